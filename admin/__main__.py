"""`python -m admin`: the operators' command line (admin.cli)."""

from admin.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
