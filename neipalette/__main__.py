"""`python -m neipalette ...` runs the command line."""

from neipalette.cli import main

if __name__ == "__main__":
    main(prog_name="neipalette")
