"""NVMe bdev subcommands: attach, list, reset and detach NVMe controllers.

Command lines follow SPDK's rpc.py:
    bdev_nvme_attach_controller -b NAME -t TRTYPE -a TRADDR [-f ADRFAM]
        [-s TRSVCID] [-n SUBNQN] [-q HOSTNQN]
prints the names of the bdevs made from the controller's namespaces
(NAMEn1, NAMEn2, ...) on one line.
"""

from rpc.bdev import by_name, command, given


def _attach(client, args):
    names = client.call("bdev_nvme_attach_controller",
                        given(name=args.name, trtype=args.trtype, traddr=args.traddr,
                              adrfam=args.adrfam, trsvcid=args.trsvcid, subnqn=args.subnqn,
                              hostnqn=args.hostnqn))
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


def _get_controllers(client, args):
    return client.call("bdev_nvme_get_controllers", given(name=args.name) or None)


def _args_get_controllers(p):
    p.add_argument("-n", "--name", help="only this controller (default: every one)")


def register(sub):
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
