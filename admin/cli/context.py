"""What every command gets: the resolved configuration, output, sign-in and the admin API client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from admin.cli.api import AdminApi
from admin.cli.auth import SignIn
from admin.cli.config import Config
from admin.cli.output import Output


@dataclass
class Context:
    config: Config
    out: Output
    sign_in: SignIn
    api: AdminApi
    stdin: TextIO
