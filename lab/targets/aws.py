"""The AWS steps of the eks target (boto3): the ECR repositories the kit's images are pushed to,
and the load balancers the cluster's cloud provider made, waited for until they are gone.
`python -m lab.targets.cluster ecr-ensure|ecr-registry|ecr-delete|elb-wait-gone ...` (main, below)
runs them for scripts/eks-*.sh and scripts/build-images.sh."""
from __future__ import annotations

import argparse
import sys
import time

from .base import TargetError

# The kit's images, one ECR repository each on EKS.
REPOSITORIES = ("appmesh-lab/controller", "appmesh-lab/proxy-init", "appmesh-lab/sample-app", "appmesh-lab/grpc-echo")


def ecr_registry(session, region: str) -> str:
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def ecr_ensure(session, region: str, repositories=REPOSITORIES) -> str:
    """Create the repositories that do not exist (scan on push, tagged); return the registry."""
    ecr = session.client("ecr", region_name=region)
    for name in repositories:
        try:
            ecr.describe_repositories(repositoryNames=[name])
        except ecr.exceptions.RepositoryNotFoundException:
            ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": True},
                                  tags=[{"Key": "app.kubernetes.io/part-of", "Value": "appmesh-lab"}])
    return ecr_registry(session, region)


def ecr_delete(session, region: str, repositories=REPOSITORIES) -> list[str]:
    """Delete the repositories and their images; the names actually deleted."""
    ecr = session.client("ecr", region_name=region)
    gone = []
    for name in repositories:
        try:
            ecr.delete_repository(repositoryName=name, force=True)
            gone.append(name)
        except ecr.exceptions.RepositoryNotFoundException:
            pass
    return gone


def cluster_load_balancers(session, region: str, cluster: str) -> list[str]:
    """Load balancers (NLB/ALB and classic) the cluster's cloud provider made (tag
    kubernetes.io/cluster/<cluster>)."""
    tag = f"kubernetes.io/cluster/{cluster}"
    out = []
    v2 = session.client("elbv2", region_name=region)
    arns = [lb["LoadBalancerArn"] for page in v2.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancers"]]
    for i in range(0, len(arns), 20):
        for d in v2.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]:
            if any(t["Key"] == tag for t in d.get("Tags", [])):
                out.append(d["ResourceArn"])
    v1 = session.client("elb", region_name=region)
    names = [lb["LoadBalancerName"] for page in v1.get_paginator("describe_load_balancers").paginate()
             for lb in page["LoadBalancerDescriptions"]]
    for i in range(0, len(names), 20):
        for d in v1.describe_tags(LoadBalancerNames=names[i:i + 20])["TagDescriptions"]:
            if any(t["Key"] == tag for t in d.get("Tags", [])):
                out.append(d["LoadBalancerName"])
    return out


def wait_load_balancers_gone(session, region: str, cluster: str, timeout: float = 600, interval: float = 10,
                             sleep=time.sleep) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = cluster_load_balancers(session, region, cluster)
        if not left:
            return
        if time.monotonic() >= deadline:
            raise TargetError(f"load balancers of cluster {cluster} still exist after {timeout:.0f}s: {', '.join(left)}; "
                              "delete them in the EC2 console (Load Balancers) to stop their charges")
        sleep(interval)


def main(argv=None) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    ap = argparse.ArgumentParser(prog="python -m lab.targets.cluster", description="AWS steps of scripts/eks-*.sh")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ecr-ensure", help="create the ECR repositories; print the registry")
    e.add_argument("--region", required=True)
    e.add_argument("repos", nargs="*", default=list(REPOSITORIES))
    d = sub.add_parser("ecr-delete", help="delete the ECR repositories and their images")
    d.add_argument("--region", required=True)
    d.add_argument("repos", nargs="*", default=list(REPOSITORIES))
    r = sub.add_parser("ecr-registry", help="print the account's ECR registry in the region")
    r.add_argument("--region", required=True)
    w = sub.add_parser("elb-wait-gone", help="wait until the cluster's load balancers are deleted")
    w.add_argument("--region", required=True)
    w.add_argument("--cluster", required=True)
    w.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    session = boto3.Session(region_name=args.region)
    try:
        if args.cmd == "ecr-ensure":
            print(ecr_ensure(session, args.region, args.repos))
        elif args.cmd == "ecr-registry":
            print(ecr_registry(session, args.region))
        elif args.cmd == "ecr-delete":
            gone = ecr_delete(session, args.region, args.repos)
            print("deleted ECR repositories: " + (", ".join(gone) if gone else "none (already gone)"))
        else:
            wait_load_balancers_gone(session, args.region, args.cluster, args.timeout)
            print(f"no load balancers of cluster {args.cluster} are left")
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:  # no credentials, no permission, no network
        print(f"error: {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 0

