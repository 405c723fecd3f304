"""Log subcommands: levels and per-component debug flags."""

from rpc import cmd

_LEVELS = "ERROR, WARNING, NOTICE, INFO, DEBUG or DISABLED"


def register(sub):
    p = cmd.add(sub, "log_set_level",
                "Set the log level: messages at or above it also go to syslog",
                lambda c, a: c.call("log_set_level", {"level": a.level}))
    p.add_argument("level", help=_LEVELS)

    cmd.simple(sub, "log_get_level", "Print the log (syslog) level")

    p = cmd.add(sub, "log_set_print_level",
                "Set the print level: messages at or above it go to stderr",
                lambda c, a: c.call("log_set_print_level", {"level": a.level}))
    p.add_argument("level", help=_LEVELS)

    cmd.simple(sub, "log_get_print_level", "Print the print (stderr) level")

    p = cmd.add(sub, "log_set_flag",
                "Enable a component's debug messages (shown at print level DEBUG)",
                lambda c, a: c.call("log_set_flag", {"flag": a.flag}))
    p.add_argument("flag", help="flag name (log_get_flags lists them) or 'all'")

    p = cmd.add(sub, "log_clear_flag", "Disable a component's debug messages",
                lambda c, a: c.call("log_clear_flag", {"flag": a.flag}))
    p.add_argument("flag", help="flag name (log_get_flags lists them) or 'all'")

    cmd.simple(sub, "log_get_flags", "Print every debug flag and whether it is enabled")
