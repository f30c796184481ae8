"""The distributed storage layer: sites, one data-access interface, replication."""
