"""`sluice secret set|delete|ls`: the secrets flows read with `sluice.secret(name)`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .common import JsonOption, ProfileOption
from .output import console, print_json

app = typer.Typer(no_args_is_help=True, help="Secrets flows read at run time (sluice.secret).")


@app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="Secret name, e.g. db-password or /prod/db/pw.")],
    value: Annotated[str | None, typer.Option(
        help="The value (better: leave it out and type it, or pipe it on stdin, so it stays "
        "out of your shell history).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Store a secret: SSM Parameter Store (SecureString) for an AWS profile, else a 0600 file
    under SLUICE_HOME/secrets."""
    from ..secrets import check_name, secret_store

    check_name(name)
    if value is None:
        if sys.stdin.isatty():
            value = typer.prompt(f"value of {name}", hide_input=True)
        else:
            value = sys.stdin.read().rstrip("\n")
    if not value:
        raise typer.BadParameter("the value is empty", param_hint="--value")
    store = secret_store(profile)
    store.set(name, value)
    console.print(f"stored secret {name} in {store.describe()}")
    console.print(f'use it: sluice.secret("{name}"), or a SecretStr parameter: '
                  f"--param '<param>={{\"$secret\": \"{name}\"}}'", highlight=False,
                  markup=False)


@app.command()
def delete(name: Annotated[str, typer.Argument(help="Secret name.")],
           profile: ProfileOption = None) -> None:
    """Delete a secret."""
    from ..exceptions import SecretNotFound
    from ..secrets import check_name, secret_store

    store = secret_store(profile)
    if not store.delete(check_name(name)):
        raise SecretNotFound(f"no secret {name!r} in {store.describe()}")
    console.print(f"deleted secret {name}")


@app.command("ls")
def list_secrets(json: JsonOption = False, profile: ProfileOption = None) -> None:
    """List the names (never the values) of the local store's secrets."""
    from ..exceptions import ConfigurationError
    from ..secrets import LocalSecretStore, secret_store

    store = secret_store(profile)
    if not isinstance(store, LocalSecretStore):
        raise ConfigurationError("listing is for the local store; in AWS use "
                                 "`aws ssm describe-parameters` or the console")
    names = store.names()
    if json:
        print_json(names)
        return
    for name in names:
        console.print(name, highlight=False, markup=False)
    if not names:
        console.print(f"no secrets in {store.root}")
