"""NVMe bdev subcommands: options, attach, list, reset and detach NVMe controllers.

Command lines follow SPDK's rpc.py:
    bdev_nvme_set_options [--ctrlr-loss-timeout-sec N] [--reconnect-delay-sec N]
        [--fast-io-fail-timeout-sec N]
    bdev_nvme_attach_controller -b NAME -t TRTYPE -a TRADDR [-f ADRFAM]
        [-s TRSVCID] [-n SUBNQN] [-q HOSTNQN] [-l CTRLR_LOSS_TIMEOUT_SEC]
        [-o RECONNECT_DELAY_SEC] [-u FAST_IO_FAIL_TIMEOUT_SEC]
The attach prints the names of the bdevs made from the controller's
namespaces (NAMEn1, NAMEn2, ...) on one line.
"""

from rpc.bdev import by_name, command, given


def _attach(client, args):
    names = client.call("bdev_nvme_attach_controller",
                        given(name=args.name, trtype=args.trtype, traddr=args.traddr,
                              adrfam=args.adrfam, trsvcid=args.trsvcid, subnqn=args.subnqn,
                              hostnqn=args.hostnqn,
                              ctrlr_loss_timeout_sec=args.ctrlr_loss_timeout_sec,
                              reconnect_delay_sec=args.reconnect_delay_sec,
                              fast_io_fail_timeout_sec=args.fast_io_fail_timeout_sec))
    if isinstance(names, list):
        return " ".join(str(n) for n in names) or None
    return names


def _args_attach(p):
    p.add_argument("-b", "--name", required=True,
                   help="controller name; its bdevs are NAMEn1, NAMEn2, ...")
    p.add_argument("-t", "--trtype", required=True, help="transport: PCIe, TCP or RDMA")
    p.add_argument("-a", "--traddr", required=True,
                   help="PCI address (0000:00:04.0) or IP address of the target")
    p.add_argument("-f", "--adrfam", help="address family for fabrics: IPv4 or IPv6")
    p.add_argument("-s", "--trsvcid", help="fabrics service (port), e.g. 4420")
    p.add_argument("-n", "--subnqn", help="NQN of the subsystem to connect to (fabrics)")
    p.add_argument("-q", "--hostnqn", help="NQN this host presents (fabrics)")
    _args_reconnect(p, short=True)


def _args_reconnect(p, short):
    def flags(letter, name):
        return ("-" + letter, name) if short else (name,)
    p.add_argument(*flags("l", "--ctrlr-loss-timeout-sec"), type=int,
                   help="after a failure, reconnect for this long, then delete the "
                        "controller (-1: forever, 0: do not reconnect)")
    p.add_argument(*flags("o", "--reconnect-delay-sec"), type=int,
                   help="wait after a failed reconnect attempt (doubles, up to 8x)")
    p.add_argument(*flags("u", "--fast-io-fail-timeout-sec"), type=int,
                   help="while reconnecting, fail new I/O after this long "
                        "(0: hold it until reconnected or deleted)")


def _set_options(client, args):
    return client.call("bdev_nvme_set_options",
                       given(ctrlr_loss_timeout_sec=args.ctrlr_loss_timeout_sec,
                             reconnect_delay_sec=args.reconnect_delay_sec,
                             fast_io_fail_timeout_sec=args.fast_io_fail_timeout_sec) or None)


def _get_controllers(client, args):
    return client.call("bdev_nvme_get_controllers", given(name=args.name) or None)


def _args_get_controllers(p):
    p.add_argument("-n", "--name", help="only this controller (default: every one)")


def register(sub):
    command(sub, "bdev_nvme_set_options",
            "Set the NVMe bdev module's defaults for later attaches (reconnect parameters)",
            _set_options, lambda p: _args_reconnect(p, short=False))
    command(sub, "bdev_nvme_attach_controller",
            "Attach an NVMe controller (PCIe or fabrics) and make a bdev of each namespace; "
            "prints the bdev names", _attach, _args_attach)
    handler, arguments = by_name("bdev_nvme_detach_controller", "controller name")
    command(sub, "bdev_nvme_detach_controller",
            "Delete a controller's bdevs and detach it", handler, arguments)
    handler, arguments = by_name("bdev_nvme_reset_controller", "controller name")
    command(sub, "bdev_nvme_reset_controller",
            "Reset a controller (its queues are recreated); answers when it is back",
            handler, arguments)
    command(sub, "bdev_nvme_get_controllers", "List attached NVMe controllers",
            _get_controllers, _args_get_controllers)
