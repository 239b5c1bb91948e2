"""``python -m microsub``: the ``microsub`` command, for a child process of this interpreter."""

from microsub.cli import main

if __name__ == "__main__":
    main()
