"""Helpers shared by the component modules."""

import argparse
import json


class CommandError(Exception):
    """A local problem (bad argument, unreadable file): reported, exit 1."""


def add(subparsers, name, help_text, handler):
    """Add subcommand name; handler(client, args) returns what to print."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def simple(subparsers, name, help_text):
    """A subcommand that calls the method of the same name without parameters."""
    return add(subparsers, name, help_text, lambda client, args: client.call(name))


def json_arg(text):
    """argparse type for a JSON argument."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError("invalid JSON %r: %s" % (text, e)) from None
