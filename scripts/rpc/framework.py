"""Framework subcommands: methods, version, reactors, threads, configuration."""

import json
import sys

from rpc import cmd


def _rpc_get_methods(client, args):
    params = {}
    if args.current:
        params["current"] = True
    if args.include_aliases:
        params["include_aliases"] = True
    return client.call("rpc_get_methods", params or None)


def _framework_get_config(client, args):
    return client.call("framework_get_config", {"name": args.name})


def _save_config(client, args):
    config = client.call("save_config")
    # Configs are printed even with a custom indent; nothing else to decide.
    print(json.dumps(config, indent=args.indent))
    return None


def _read_config(args):
    try:
        if args.file is None or args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise cmd.CommandError("cannot read %s: %s" % (args.file, e.strerror)) from None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise cmd.CommandError("invalid config JSON: %s" % e) from None
    return config


def _config_calls(config):
    """Yield (subsystem, index, method, params) in file order, checking the shape."""
    if not isinstance(config, dict) or not isinstance(config.get("subsystems"), list):
        raise cmd.CommandError('config must be an object with a "subsystems" array')
    for sub in config["subsystems"]:
        if not isinstance(sub, dict) or not isinstance(sub.get("subsystem"), str):
            raise cmd.CommandError('every subsystem needs a "subsystem" name')
        calls = sub.get("config")
        if calls is None:
            continue
        if not isinstance(calls, list):
            raise cmd.CommandError('subsystem %s: "config" must be an array' % sub["subsystem"])
        for i, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("method"), str):
                raise cmd.CommandError('subsystem %s entry %d: needs a "method" string'
                                       % (sub["subsystem"], i))
            params = call.get("params")
            if params is not None and not isinstance(params, dict):
                raise cmd.CommandError('subsystem %s entry %d (%s): "params" must be an object'
                                       % (sub["subsystem"], i, call["method"]))
            yield sub["subsystem"], i, call["method"], params


def _load_config(client, args):
    # Check the whole file before calling anything: a typo at the end must not
    # leave half a configuration applied.
    calls = list(_config_calls(_read_config(args)))
    for subsystem, index, method, params in calls:
        try:
            client.call(method, params)
        except Exception as e:
            raise cmd.CommandError("load_config: subsystem '%s' entry %d (%s) failed: %s"
                                   % (subsystem, index, method, e)) from None
    return None


def _call(client, args):
    return client.call(args.method, args.params)


def register(sub):
    p = cmd.add(sub, "rpc_get_methods", "List the server's RPC methods", _rpc_get_methods)
    p.add_argument("--current", action="store_true",
                   help="only methods that may be called in the current state")
    p.add_argument("--include-aliases", action="store_true",
                   help="also list deprecated aliases")

    cmd.simple(sub, "ustor_get_version", "Print the server's version")
    cmd.simple(sub, "framework_get_reactors", "List the reactors and their threads")
    cmd.simple(sub, "framework_get_subsystems", "List the subsystems and their dependencies")
    cmd.simple(sub, "thread_get_stats", "Print busy and idle time per thread")

    p = cmd.add(sub, "framework_get_config", "Print one subsystem's configuration",
                _framework_get_config)
    p.add_argument("name", help="subsystem name")

    p = cmd.add(sub, "save_config",
                "Print the running configuration as JSON (ustord -c and load_config read it)",
                _save_config)
    p.add_argument("-i", "--indent", type=int, default=2, help="indentation (default 2)")

    p = cmd.add(sub, "load_config",
                "Replay a configuration: call each method of each subsystem in order",
                _load_config)
    p.add_argument("-f", "--file", help="config file (default: standard input)")

    p = cmd.add(sub, "call", "Call any method with raw JSON parameters", _call)
    p.add_argument("method", help="method name")
    p.add_argument("params", nargs="?", type=cmd.json_arg, default=None,
                   help="parameters as a JSON object")
