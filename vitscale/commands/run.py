"""`vitscale run`: a vitscale command on N processes per node, here or on every host of a
hostfile (see vitscale/distributed/runner.py and docs/launching.md)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("run", help="run a vitscale command on several processes and hosts")
    p.add_argument("--nproc-per-node", type=int, required=True, help="processes per host")
    p.add_argument("--nnodes", type=int, default=1, help="hosts in total (without --hostfile)")
    p.add_argument("--node-rank", type=int, default=0, help="this host's rank (without --hostfile)")
    p.add_argument("--hostfile", help="start on every host listed (over SSH)")
    p.add_argument("--include", help="comma-separated hosts of the hostfile to use")
    p.add_argument("--exclude", help="comma-separated hosts of the hostfile to leave out")
    p.add_argument("--master-addr", help="rank-0 host (default: the first host, or localhost)")
    p.add_argument("--master-port", type=int, help="rendezvous port (default 29500)")
    p.add_argument("--ssh-port", type=int, help="SSH port of the hosts")
    p.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an ssh -o option (repeatable)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="the vitscale command, e.g. train configs/cifar10/quick_cpu.py ...")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed.launch import LaunchError
    from ..distributed.runner import check_command, read_hostfile, run_hosts, run_local

    command = check_command(args.command)
    if args.nproc_per_node < 1:
        raise LaunchError("--nproc-per-node must be at least 1")
    if args.hostfile:
        hosts = read_hostfile(args.hostfile, args.include, args.exclude)
        return run_hosts(command, hosts, args.nproc_per_node, args.master_addr,
                         args.master_port or 29500, args.ssh_port, args.ssh_option)
    if args.include or args.exclude:
        raise LaunchError("--include/--exclude select hosts of a --hostfile: give one")
    if not 0 <= args.node_rank < args.nnodes:
        raise LaunchError(f"--node-rank {args.node_rank} is not in 0..{args.nnodes - 1}")
    if args.nnodes > 1 and not args.master_addr:
        raise LaunchError("--nnodes > 1 needs --master-addr (the host of node rank 0)")
    return run_local(command, args.nproc_per_node, args.main, args.nnodes, args.node_rank,
                     args.master_addr, args.master_port)
