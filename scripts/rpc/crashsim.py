"""Crash-consistency simulator subcommands (bdev module crashsim, a test tool)."""

from rpc.bdev import by_name, command, given, uuid_arg


def _bdev_crashsim_create(client, args):
    return client.call("bdev_crashsim_create",
                       given(base_bdev_name=args.base_bdev_name, name=args.name,
                             uuid=args.uuid))


def _args_crashsim_create(p):
    p.add_argument("-b", "--base-bdev-name", dest="base_bdev_name", required=True,
                   help="base bdev (it may be created later)")
    p.add_argument("-n", "--name", required=True, help="name of the crashsim bdev")
    uuid_arg(p, "the crashsim bdev")


def register(sub):
    command(sub, "bdev_crashsim_create",
            "Create a crash-simulation bdev over a base; prints its name",
            _bdev_crashsim_create, _args_crashsim_create)
    handler, arguments = by_name("bdev_crashsim_delete", "crashsim bdev name")
    command(sub, "bdev_crashsim_delete", "Delete a crashsim bdev and its log",
            handler, arguments)
    handler, arguments = by_name("bdev_crashsim_start_recording", "crashsim bdev name")
    command(sub, "bdev_crashsim_start_recording",
            "Snapshot the base and start logging writes and flushes", handler, arguments)
    handler, arguments = by_name("bdev_crashsim_stop_recording", "crashsim bdev name")
    command(sub, "bdev_crashsim_stop_recording",
            "Stop logging; prints the number of events and operations", handler, arguments)
