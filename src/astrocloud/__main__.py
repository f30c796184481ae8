"""`python -m astrocloud`: the same command as the `astrocloud` script."""

from astrocloud.cli import main

if __name__ == "__main__":
    main()
