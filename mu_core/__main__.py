"""Command line: ``python -m mu_core run --profile NAME --run-dir DIR [--set field=value ...]``
and ``python -m mu_core profiles``."""
import argparse
import json
import sys

from . import profiles, study
from .errors import ConfigError


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mu_core", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("profiles", help="list the profiles and their fields")
    t = sub.add_parser("tables", help="write the book's generated tables (method and notebook parameters)")
    t.add_argument("--out", default="book/generated")
    td = sub.add_parser("tidy", help="fold code and drop papermill's injected cell in executed notebooks")
    td.add_argument("notebooks", nargs="+")
    a = sub.add_parser("analyse", help="the statistics (W2, variance components, ICC, rank flips, seed budget) "
                                       "of any results table")
    a.add_argument("table")
    a.add_argument("--out", required=True, help="the folder for the tables, figures and summary")
    a.add_argument("--column", action="append", default=[], metavar="OURS=THEIRS",
                   help="map a column: method, train_seed, unlearn_seed, dataset, setting, target, protocol; repeatable")
    a.add_argument("--protocol", action="append", default=[], metavar="OURS=THEIRS",
                   help="what the protocol column's values mean, e.g. --protocol A=1 --protocol B=2; repeatable")
    a.add_argument("--metrics", default=None, help="metric columns, comma-separated (default: every other numeric column)")
    a.add_argument("--train-seconds", type=float, default=None,
                   help="cost of training one model in seconds, for the seed budget (with the table's method_seconds)")
    r = sub.add_parser("run", help="run a profile's designs and write results.csv")
    r.add_argument("--profile", required=True)
    r.add_argument("--run-dir", required=True)
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a profile field (dotted, YAML value); repeatable")
    r.add_argument("--executor", default="auto", choices=study.EXECUTORS,
                   help="auto (default): a dask LocalCluster with one worker per core when there is "
                        "more than one core, else in this process")
    r.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--json", action="store_true", help="print a JSON summary instead of a sentence")
    args = ap.parse_args(argv)
    try:
        if args.command == "profiles":
            print(profiles.describe())
            return 0
        if args.command == "tidy":
            from . import page
            for path in args.notebooks:
                page.tidy(path)
            return 0
        if args.command == "analyse":
            from . import external
            written = external.analyse(args.table, args.out, external.parse_columns(args.column),
                                       args.metrics.split(",") if args.metrics else None, args.train_seconds,
                                       external.parse_protocols(args.protocol))
            print(open(written["summary"]).read().strip())
            return 0
        if args.command == "tables":
            from . import tables
            print("\n".join(tables.write(args.out)))
            return 0
        summary = study.run(args.profile, args.run_dir, args.set, args.executor, args.scheduler,
                           progress=not args.no_progress)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions, a vanished folder: nothing half-written stays
        where = err.filename or getattr(args, "run_dir", None) or getattr(args, "out", None)
        print(f"error: {err.strerror or err} ({where}); what was stored is kept: rerun the same command to resume",
              file=sys.stderr)
        return 1
    c = summary.computed
    if args.json:
        print(json.dumps({"rows": len(summary.table), "results": summary.path, **c, "failed": summary.failed,
                          "collapsed": summary.collapsed}))
    else:
        odd = "".join([f"; {summary.failed} failed" if summary.failed else "",
                       f"; {summary.collapsed} collapsed" if summary.collapsed else ""])
        print(f"{len(summary.table)} rows written to {summary.path} "
              f"(computed now: {c['trained']} models, {c['jobs']} jobs{odd})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
