"""Command line: ``python -m mu_core run --profile NAME --run-dir DIR [--set field=value ...]``
and ``python -m mu_core profiles``."""
import argparse
import sys

from . import grid, profiles
from .errors import ConfigError


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mu_core", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("profiles", help="list the profiles and their fields")
    r = sub.add_parser("run", help="run a profile's grid and write results.csv")
    r.add_argument("--profile", required=True)
    r.add_argument("--run-dir", required=True)
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a profile field (dotted, YAML value); repeatable")
    r.add_argument("--executor", default="local", choices=["local", "dask"])
    r.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    r.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.command == "profiles":
            print(profiles.describe())
            return 0
        table = grid.run(args.profile, args.run_dir, args.set, args.executor, args.scheduler,
                         progress=not args.no_progress)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    c = table.attrs.get("computed", {})
    print(f"{len(table)} rows written to {args.run_dir}/results.csv "
          f"(computed now: {c.get('trained', 0)} models, {c.get('jobs', 0)} jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
