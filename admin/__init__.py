"""Operator (admin) API: its own Entra authentication, teams and their keys."""
