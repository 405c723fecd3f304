"""Block device subcommands: the bdev layer and its modules.

Command lines follow SPDK's rpc.py so scripts written for SPDK run unchanged:
sizes on the command line are in MiB and turned into block counts here, the
JSON parameters are SPDK's names. The older names that tutorials still show
(construct_malloc_bdev, get_bdevs, ...) keep their old command lines; they
call the current method and print a note on stderr.

given(), non_negative(), uuid_arg(), by_name() and command() are shared
with the other bdev module files (raid.py, crashsim.py).
"""

import argparse
import sys

from rpc import cmd

MIB = 1024 * 1024

_IO_TYPES = ("read, write, unmap, flush, reset, write_zeroes, compare, "
             "compare_and_write, all (every type) or clear (remove the injections)")
_ERROR_TYPES = "failure, pending, corrupt_data or nomem"
_LATENCY_TYPES = ("avg_read", "p99_read", "avg_write", "p99_write")


def given(**kwargs):
    """The parameters that were given: a key whose value is None is left out."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _num_blocks(total_size_mb, block_size, md_size=None, md_interleave=False):
    """Blocks holding total_size_mb MiB of data; refuses a remainder.

    With interleaved metadata each block_size block carries block_size -
    md_size bytes of data, so "64 520 -m 8 -i" is 64 MiB of data in 520-byte
    blocks.
    """
    data_size = block_size - (md_size or 0) if md_interleave else block_size
    if block_size <= 0 or data_size <= 0:
        raise cmd.CommandError("the block size must be positive and larger than the "
                               "interleaved metadata, not %d" % block_size)
    if total_size_mb <= 0:
        raise cmd.CommandError("the total size must be positive, not %g MiB" % total_size_mb)
    total_bytes = total_size_mb * MIB
    if total_bytes != int(total_bytes) or int(total_bytes) % data_size != 0:
        raise cmd.CommandError("%g MiB is not a whole number of %d-byte blocks"
                               % (total_size_mb, data_size))
    return int(total_bytes) // data_size


def non_negative(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("%r must not be negative" % text)
    return value


def command(sub, name, help_text, handler, arguments, deprecated=()):
    """Add name, and each deprecated old name with the same command line.

    arguments(parser) adds the arguments. An old name calls the same handler,
    so it sends the current method, after a note on stderr.
    """
    arguments(cmd.add(sub, name, help_text, handler))
    for old in deprecated:
        def old_handler(client, args, old=old):
            print("rpc.py: %s is deprecated, use %s" % (old, name), file=sys.stderr)
            return handler(client, args)
        p = cmd.add(sub, old, "(deprecated) use %s" % name, old_handler)
        p.description = "Deprecated name of %s, same command line: %s" % (name, help_text)
        arguments(p)


def uuid_arg(p, what="the bdev"):
    p.add_argument("-u", "--uuid", help="UUID of %s (default: a random one)" % what)


# ---- bdev layer ------------------------------------------------------------


def _bdev_get_bdevs(client, args):
    return client.call("bdev_get_bdevs", given(name=args.name, timeout=args.wait_ms) or None)


def _args_get_bdevs(p):
    p.add_argument("-b", "--name", help="only this bdev (name or alias); an error if absent")
    # dest differs from rpc.py's own -t (the response timeout), which it would clobber.
    p.add_argument("-t", "--timeout", dest="wait_ms", type=non_negative,
                   help="with -b: milliseconds to wait for the bdev to appear (default 0)")


def _bdev_get_iostat(client, args):
    return client.call("bdev_get_iostat", given(name=args.name) or None)


def _args_get_iostat(p):
    p.add_argument("-b", "--name", help="only this bdev (default: every bdev)")


_QOS_LIMITS = (
    ("rw_ios_per_sec", "read and write I/Os per second (0 removes it)"),
    ("rw_mbytes_per_sec", "read and write MiB per second (0 removes it)"),
    ("r_mbytes_per_sec", "read MiB per second (0 removes it)"),
    ("w_mbytes_per_sec", "write MiB per second (0 removes it)"),
)


def _bdev_set_qos_limit(client, args):
    params = {"name": args.name}
    for key, _ in _QOS_LIMITS:
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    return client.call("bdev_set_qos_limit", params)


def _args_set_qos_limit(p):
    p.add_argument("name", help="bdev name")
    for key, text in _QOS_LIMITS:
        p.add_argument("--" + key, "--" + key.replace("_", "-"), dest=key,
                       type=non_negative, help=text + "; left unchanged if not given")


# ---- malloc and null -------------------------------------------------------


def _bdev_malloc_create(client, args):
    params = given(name=args.name,
                   num_blocks=_num_blocks(args.total_size, args.block_size, args.md_size,
                                          args.md_interleave),
                   block_size=args.block_size, uuid=args.uuid,
                   optimal_io_boundary=args.optimal_io_boundary, md_size=args.md_size,
                   dif_type=args.dif_type, physical_block_size=args.physical_block_size)
    if args.md_interleave:
        params["md_interleave"] = True
    if args.dif_is_head_of_md:
        params["dif_is_head_of_md"] = True
    return client.call("bdev_malloc_create", params)


def _args_malloc_create(p):
    p.add_argument("total_size", type=float,
                   help="size in MiB (of data, without interleaved metadata)")
    p.add_argument("block_size", type=int, help="block size in bytes (a multiple of 512)")
    p.add_argument("-b", "--name", help="bdev name (default: MallocN)")
    uuid_arg(p)
    p.add_argument("-o", "--optimal-io-boundary", type=non_negative,
                   help="I/O boundary in blocks that I/Os should not cross (0: none)")
    p.add_argument("-m", "--md-size", type=non_negative,
                   help="metadata bytes per block (0: none)")
    p.add_argument("-i", "--md-interleave", action="store_true",
                   help="metadata interleaved with the data (default: separate buffer)")
    p.add_argument("-t", "--dif-type", type=non_negative,
                   help="protection information type 0 to 3 (0: none)")
    p.add_argument("-d", "--dif-is-head-of-md", action="store_true",
                   help="protection information at the start of the metadata")
    p.add_argument("-p", "--physical-block-size", type=non_negative,
                   help="physical block size in bytes, reported to consumers")


def _bdev_null_create(client, args):
    params = given(name=args.name,
                   num_blocks=_num_blocks(args.total_size, args.block_size, args.md_size,
                                          args.md_interleave),
                   block_size=args.block_size, uuid=args.uuid, md_size=args.md_size,
                   dif_type=args.dif_type, physical_block_size=args.physical_block_size)
    if args.md_interleave:
        params["md_interleave"] = True
    if args.dif_is_head_of_md:
        params["dif_is_head_of_md"] = True
    return client.call("bdev_null_create", params)


def _args_null_create(p):
    p.add_argument("name", help="bdev name")
    p.add_argument("total_size", type=float,
                   help="size in MiB (of data, without interleaved metadata)")
    p.add_argument("block_size", type=int, help="block size in bytes (a multiple of 512)")
    uuid_arg(p)
    p.add_argument("-m", "--md-size", type=non_negative,
                   help="metadata bytes per block (0: none)")
    p.add_argument("-i", "--md-interleave", action="store_true",
                   help="metadata interleaved with the data")
    p.add_argument("-t", "--dif-type", type=non_negative,
                   help="protection information type 0 to 3 (0: none)")
    p.add_argument("-d", "--dif-is-head-of-md", action="store_true",
                   help="protection information at the start of the metadata")
    p.add_argument("-p", "--physical-block-size", type=non_negative,
                   help="physical block size in bytes, reported to consumers")


def by_name(method, what):
    """(handler, arguments) for a method whose only parameter is name."""
    def handler(client, args):
        return client.call(method, {"name": args.name})

    def arguments(p):
        p.add_argument("name", help=what)
    return handler, arguments


# ---- files: aio and io_uring -----------------------------------------------


def _file_create(method):
    def handler(client, args):
        params = given(filename=args.filename, name=args.name,
                       block_size=args.block_size, uuid=args.uuid)
        if getattr(args, "readonly", False):
            params["readonly"] = True
        return client.call(method, params)
    return handler


def _args_file_create(readonly):
    def arguments(p):
        p.add_argument("filename", help="file or block device to serve")
        p.add_argument("name", help="bdev name")
        p.add_argument("block_size", type=int, nargs="?",
                       help="block size in bytes (default: the device's logical block "
                       "size, 512 for a regular file)")
        uuid_arg(p)
        if readonly:
            p.add_argument("-r", "--readonly", action="store_true",
                           help="open the file read-only; writes fail")
    return arguments


# ---- virtual bdevs ---------------------------------------------------------


def _bdev_split_create(client, args):
    names = client.call("bdev_split_create",
                        given(base_bdev=args.base_bdev, split_count=args.split_count,
                              split_size_mb=args.split_size_mb))
    # Like SPDK's client: the parts' names on one line.
    if isinstance(names, list):
        return " ".join(str(n) for n in names) or None
    return names


def _args_split_create(p):
    p.add_argument("base_bdev", help="bdev to split (it may be created later)")
    p.add_argument("split_count", type=int, help="number of parts")
    p.add_argument("-s", "--split-size-mb", dest="split_size_mb", type=non_negative,
                   help="size of each part in MiB (default: the base divided evenly)")


def _bdev_split_delete(client, args):
    return client.call("bdev_split_delete", {"base_bdev": args.base_bdev})


def _args_split_delete(p):
    p.add_argument("base_bdev", help="the split base bdev: all its parts are removed")


def _bdev_passthru_create(client, args):
    return client.call("bdev_passthru_create",
                       given(base_bdev_name=args.base_bdev_name, name=args.name,
                             uuid=args.uuid))


def _args_passthru_create(p):
    p.add_argument("-b", "--base-bdev-name", dest="base_bdev_name", required=True,
                   help="base bdev (it may be created later)")
    p.add_argument("-p", "--name", required=True, help="name of the passthru bdev")
    uuid_arg(p)


def _bdev_error_create(client, args):
    return client.call("bdev_error_create", given(base_name=args.base_name, uuid=args.uuid))


def _args_error_create(p):
    p.add_argument("base_name", help="base bdev; the error bdev is called EE_<base_name>")
    uuid_arg(p)


def _bdev_error_inject_error(client, args):
    return client.call("bdev_error_inject_error",
                       given(name=args.name, io_type=args.io_type,
                             error_type=args.error_type, num=args.num,
                             corrupt_offset=args.corrupt_offset,
                             corrupt_value=args.corrupt_value))


def _args_error_inject_error(p):
    p.add_argument("name", help="error bdev (EE_...)")
    p.add_argument("io_type", help=_IO_TYPES)
    p.add_argument("error_type", help=_ERROR_TYPES)
    p.add_argument("-n", "--num", type=non_negative,
                   help="number of I/Os to fail or corrupt (default 1)")
    p.add_argument("-o", "--corrupt-offset", dest="corrupt_offset", type=non_negative,
                   help="corrupt_data: byte offset in the I/O's data to corrupt")
    p.add_argument("-v", "--corrupt-value", dest="corrupt_value", type=non_negative,
                   help="corrupt_data: non-zero byte value XORed into that byte")


def _bdev_delay_create(client, args):
    return client.call("bdev_delay_create",
                       given(base_bdev_name=args.base_bdev_name, name=args.name,
                             avg_read_latency=args.avg_read_latency,
                             p99_read_latency=args.nine_nine_read_latency,
                             avg_write_latency=args.avg_write_latency,
                             p99_write_latency=args.nine_nine_write_latency,
                             uuid=args.uuid))


def _args_delay_create(p):
    p.add_argument("-b", "--base-bdev-name", dest="base_bdev_name", required=True,
                   help="base bdev (it may be created later)")
    p.add_argument("-d", "--name", required=True, help="name of the delay bdev")
    p.add_argument("-r", "--avg-read-latency", dest="avg_read_latency", type=non_negative,
                   required=True, help="average read latency in microseconds")
    p.add_argument("-t", "--nine-nine-read-latency", dest="nine_nine_read_latency",
                   type=non_negative, required=True,
                   help="99th percentile read latency in microseconds")
    p.add_argument("-w", "--avg-write-latency", dest="avg_write_latency", type=non_negative,
                   required=True, help="average write latency in microseconds")
    p.add_argument("-n", "--nine-nine-write-latency", dest="nine_nine_write_latency",
                   type=non_negative, required=True,
                   help="99th percentile write latency in microseconds")
    uuid_arg(p)


def _bdev_delay_update_latency(client, args):
    return client.call("bdev_delay_update_latency",
                       {"delay_bdev_name": args.delay_bdev_name,
                        "latency_type": args.latency_type,
                        "latency_us": args.latency_us})


def _args_delay_update_latency(p):
    p.add_argument("delay_bdev_name", help="delay bdev")
    p.add_argument("latency_type", choices=_LATENCY_TYPES, help="which latency to change")
    p.add_argument("latency_us", type=non_negative, help="new latency in microseconds")


def register(sub):
    # The bdev layer.
    command(sub, "bdev_get_bdevs", "List bdevs with their geometry, claims and features",
            _bdev_get_bdevs, _args_get_bdevs, deprecated=("get_bdevs",))
    command(sub, "bdev_get_iostat", "Print I/O statistics of every bdev or of one",
            _bdev_get_iostat, _args_get_iostat)
    command(sub, "bdev_set_qos_limit", "Set or remove a bdev's QoS rate limits",
            _bdev_set_qos_limit, _args_set_qos_limit)
    cmd.simple(sub, "bdev_wait_for_examine",
               "Return once every bdev module has examined every bdev")

    # RAM and null.
    command(sub, "bdev_malloc_create", "Create a RAM bdev; prints its name",
            _bdev_malloc_create, _args_malloc_create, deprecated=("construct_malloc_bdev",))
    handler, arguments = by_name("bdev_malloc_delete", "malloc bdev name")
    command(sub, "bdev_malloc_delete", "Delete a RAM bdev and free its memory",
            handler, arguments, deprecated=("delete_malloc_bdev",))
    command(sub, "bdev_null_create",
            "Create a bdev that discards writes and reads zeroes; prints its name",
            _bdev_null_create, _args_null_create, deprecated=("construct_null_bdev",))
    handler, arguments = by_name("bdev_null_delete", "null bdev name")
    command(sub, "bdev_null_delete", "Delete a null bdev", handler, arguments,
            deprecated=("delete_null_bdev",))

    # Files.
    command(sub, "bdev_aio_create", "Serve a file or block device with Linux AIO; "
            "prints the name", _file_create("bdev_aio_create"), _args_file_create(True),
            deprecated=("construct_aio_bdev",))
    handler, arguments = by_name("bdev_aio_delete", "aio bdev name")
    command(sub, "bdev_aio_delete", "Delete an aio bdev (the file stays)", handler,
            arguments, deprecated=("delete_aio_bdev",))
    handler, arguments = by_name("bdev_aio_rescan", "aio bdev name")
    command(sub, "bdev_aio_rescan", "Pick up a new size of an aio bdev's file",
            handler, arguments)
    command(sub, "bdev_uring_create", "Serve a file or block device with io_uring; "
            "prints the name", _file_create("bdev_uring_create"), _args_file_create(False))
    handler, arguments = by_name("bdev_uring_delete", "uring bdev name")
    command(sub, "bdev_uring_delete", "Delete a uring bdev (the file stays)", handler,
            arguments)
    handler, arguments = by_name("bdev_uring_rescan", "uring bdev name")
    command(sub, "bdev_uring_rescan", "Pick up a new size of a uring bdev's file",
            handler, arguments)

    # Virtual bdevs.
    command(sub, "bdev_split_create",
            "Split a bdev into parts BASEp0, BASEp1, ...; prints their names",
            _bdev_split_create, _args_split_create)
    command(sub, "bdev_split_delete", "Remove a bdev's split parts",
            _bdev_split_delete, _args_split_delete)
    command(sub, "bdev_passthru_create",
            "Create a passthru bdev that forwards every I/O to its base; prints its name",
            _bdev_passthru_create, _args_passthru_create)
    handler, arguments = by_name("bdev_passthru_delete", "passthru bdev name")
    command(sub, "bdev_passthru_delete", "Delete a passthru bdev", handler, arguments)
    command(sub, "bdev_error_create",
            "Create an error-injection bdev EE_<base>; prints its name",
            _bdev_error_create, _args_error_create)
    handler, arguments = by_name("bdev_error_delete", "error bdev name (EE_...)")
    command(sub, "bdev_error_delete", "Delete an error-injection bdev", handler, arguments)
    command(sub, "bdev_error_inject_error",
            "Make an error bdev fail or corrupt the next I/Os of a type",
            _bdev_error_inject_error, _args_error_inject_error)
    command(sub, "bdev_delay_create",
            "Create a bdev that adds latency to its base's I/O; prints its name",
            _bdev_delay_create, _args_delay_create)
    handler, arguments = by_name("bdev_delay_delete", "delay bdev name")
    command(sub, "bdev_delay_delete", "Delete a delay bdev", handler, arguments)
    command(sub, "bdev_delay_update_latency", "Change one latency of a delay bdev",
            _bdev_delay_update_latency, _args_delay_update_latency)
