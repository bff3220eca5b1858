"""The `liutong-admin` command line (`python -m admin`): sign in with Entra, then call the admin API."""
