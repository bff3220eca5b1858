"""The verification page of the device code flow: enter the code, pick a local user, approve or decline."""

from __future__ import annotations

from html import escape

from localdev.standin.directory import User

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:1rem 0 .25rem}input,select{font-size:1.1rem;padding:.3rem;width:100%}"
    "button{font-size:1rem;margin:1rem .5rem 0 0;padding:.4rem 1rem}.error{color:#a4262c}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def form(users: list[User], *, code: str = "", error: str | None = None) -> str:
    options = "".join(
        f'<option value="{escape(u.oid)}">{escape(u.name)} ({escape(u.upn)})</option>' for u in users
    )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _page(
        "Enter code",
        f"{problem}<p>Enter the code displayed on your app or device, then choose who signs in.</p>"
        '<form method="post" action="/devicelogin">'
        f'<label for="user_code">Code</label><input id="user_code" name="user_code" value="{escape(code)}" '
        'autocomplete="off" autofocus required>'
        f'<label for="user">Account</label><select id="user" name="user">{options}</select>'
        '<button type="submit" name="action" value="approve">Sign in</button>'
        '<button type="submit" name="action" value="decline">Decline</button></form>',
    )


def done(client_name: str, user: User | None) -> str:
    if user is None:
        return _page("Sign-in declined", f"<p>You declined to sign in to {escape(client_name)}.</p>")
    return _page(
        "You're signed in",
        f"<p>You have signed in to {escape(client_name)} as {escape(user.upn)}. "
        "You may now close this window.</p>",
    )
