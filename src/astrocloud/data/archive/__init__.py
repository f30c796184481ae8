"""The observation archive: ingest, quality control, release, ObsCore metadata, previews."""
