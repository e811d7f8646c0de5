"""Errors raised while generating or checking contract artefacts."""


class ContractError(Exception):
    """Root of every contract error; the message says what to run to fix it."""


class StaleArtefactError(ContractError):
    """A checked-in generated file no longer matches its source."""
