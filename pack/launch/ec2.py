"""`pack launch ROW --hw g6e.xlarge`: one EC2 instance per launch, through boto3.

provision: resolve the AMI (a pinned id first; a rotated one is reported and the current one is
  taken from the SSM public parameter, then describe_images), run_instances with the catalogue's
  instance type, InstanceInitiatedShutdownBehavior=terminate, tags carrying the expiry, the
  user-data of userdata.py, an instance profile that may write the results to S3; wait until running.
execute: nothing to do from here: the user-data runs the rows detached and uploads to S3.
poll / fetch: instance state + s3://…/status.json; the runs tree from s3://…/runs.
teardown: terminate_instances. reap: every pack-tagged instance whose pack:expires-at has passed.

Credentials come from the usual boto3 chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
SSO, instance role). Tested against moto; not run against a real AWS account here.
"""

from __future__ import annotations

import os

from .. import catalog
from ..errors import LaunchError, require
from . import settings, userdata
from .lifecycle import Launcher, Status
from .sink import count_reps, fetch_into, open_sink, read_status, write_status
from .spec import LaunchSpec, iso

TAG_ID, TAG_EXPIRES, TAG_ROWS = "pack:launch-id", "pack:expires-at", "pack:rows"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN "
    "for temporary keys), or AWS_PROFILE to a profile in ~/.aws/credentials or ~/.aws/config"
)


class EC2Launcher(Launcher):
    provider = "ec2"

    def __init__(self, runs_root, log=None, session=None):
        super().__init__(runs_root, log)
        self._session = session

    # ------------------------------------------------------------ clients
    def session(self):
        if self._session is None:
            boto3 = require("boto3", "cloud", "EC2 launches")
            from botocore.exceptions import ProfileNotFound

            profile = os.environ.get("AWS_PROFILE") or None
            try:
                self._session = boto3.Session(profile_name=profile)
            except ProfileNotFound:
                raise LaunchError(
                    f"AWS_PROFILE={profile} names no profile in ~/.aws/config or ~/.aws/credentials; "
                    f"fix AWS_PROFILE or unset it and set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
                ) from None
        return self._session

    def client(self, service: str, region: str):
        return self.session().client(service, region_name=region)

    def region_for(self, spec_or_rec) -> str:
        region = spec_or_rec.get("region") if isinstance(spec_or_rec, dict) else spec_or_rec.hardware.region
        return region or self.session().region_name or "us-east-1"

    def check_credentials(self) -> None:
        if self.session().get_credentials() is None:
            raise LaunchError(NO_CREDENTIALS)

    def preflight(self, spec: LaunchSpec) -> None:
        if not os.environ.get("PACK_EC2_INSTANCE_PROFILE"):
            raise LaunchError(
                "set PACK_EC2_INSTANCE_PROFILE to an IAM instance profile whose role may write to the "
                "results bucket (the instance uploads its own results to S3)"
            )

    # ------------------------------------------------------------ AMI
    def _image(self, ec2, ami: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            images = ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError as e:
            if e.response["Error"]["Code"] in (
                "InvalidAMIID.NotFound",
                "InvalidAMIID.Malformed",
                "InvalidAMIID.Unavailable",
            ):
                return None
            raise
        return images[0] if images else None

    def resolve_ami(self, region: str) -> tuple[str, dict, str]:
        """(ami id, image description, one sentence on how it was chosen). Pinned id first, then SSM, then a search."""
        from botocore.exceptions import ClientError

        cfg = settings.provider("ec2").get("ami", {})
        ec2 = self.client("ec2", region)
        pinned = os.environ.get("PACK_EC2_AMI") or (cfg.get("pinned") or {}).get(region)
        why = ""
        if pinned:
            img = self._image(ec2, pinned)
            if img and img.get("State") == "available":
                return pinned, img, f"AMI {pinned} (pinned for {region})"
            why = (
                f"the pinned AMI {pinned} for {region} "
                + (
                    "no longer exists (AMIs rotate: the seed's launcher failed the same way)"
                    if img is None
                    else f"is {img.get('State')}"
                )
                + "; "
            )
        param = cfg.get("ssm_parameter")
        if param:
            try:
                value = self.client("ssm", region).get_parameter(Name=param)["Parameter"]["Value"]
                img = self._image(ec2, value)
                if img and img.get("State") == "available":
                    return (
                        value,
                        img,
                        (
                            f"{why}using {value}, the current AMI from SSM parameter {param}; pin it with "
                            f"PACK_EC2_AMI={value} or in pack/launch/providers.yaml (ec2.ami.pinned.{region})"
                        ),
                    )
                why += f"SSM parameter {param} points at {value}, which is not available; "
            except ClientError as e:
                why += f"SSM parameter {param} could not be read ({e.response['Error']['Code']}); "
        pattern = cfg.get("name_pattern")
        if pattern:
            images = ec2.describe_images(
                Owners=list(cfg.get("owners") or ["amazon"]),
                Filters=[{"Name": "name", "Values": [pattern]}, {"Name": "state", "Values": ["available"]}],
            )["Images"]
            if images:
                img = max(images, key=lambda i: i.get("CreationDate", ""))
                return (
                    img["ImageId"],
                    img,
                    (
                        f"{why}using {img['ImageId']} ({img.get('Name')}), the newest image "
                        f"named '{pattern}'; pin it with PACK_EC2_AMI={img['ImageId']}"
                    ),
                )
            why += f"no available image is named '{pattern}'; "
        raise LaunchError(
            f"no usable AMI in {region}: {why}set PACK_EC2_AMI to a GPU AMI id with Docker and the "
            f"NVIDIA Container Toolkit"
        )

    # ------------------------------------------------------------ lifecycle
    def provision(self, spec: LaunchSpec, handle: dict) -> None:
        region = self.region_for(spec)
        handle["region"] = region
        ami, image, note = self.resolve_ami(region)
        self.log(note if note.startswith("AMI ") else "warning: " + note)
        handle["ami"] = ami
        sink = open_sink(spec.results, self.session())
        write_status(sink, "provisioning", launch_id=spec.launch_id)
        handle["results"] = spec.results
        tags = [
            {"Key": "Name", "Value": f"pack-{spec.launch_id}"},
            {"Key": TAG_ID, "Value": spec.launch_id},
            {"Key": TAG_EXPIRES, "Value": str(int(spec.expires_at))},
            {"Key": "pack:expires-at-iso", "Value": iso(spec.expires_at)},
            {"Key": TAG_ROWS, "Value": ",".join(spec.rows)[:255]},
            {"Key": "pack:managed-by", "Value": "pack"},
        ]
        params = dict(
            ImageId=ami,
            InstanceType=spec.hardware.instance_type,
            MinCount=1,
            MaxCount=1,
            UserData=userdata.render(spec, region),
            InstanceInitiatedShutdownBehavior="terminate",
            IamInstanceProfile={"Name": os.environ["PACK_EC2_INSTANCE_PROFILE"]},
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            BlockDeviceMappings=[
                {
                    "DeviceName": image.get("RootDeviceName") or "/dev/sda1",
                    "Ebs": {
                        "VolumeSize": int(spec.hardware.disk_gb or 200),
                        "DeleteOnTermination": True,
                        "VolumeType": settings.provider("ec2").get("volume_type", "gp3"),
                    },
                }
            ],
        )
        if os.environ.get("PACK_EC2_SUBNET_ID"):
            params["SubnetId"] = os.environ["PACK_EC2_SUBNET_ID"]
        if os.environ.get("PACK_EC2_SECURITY_GROUP_IDS"):
            params["SecurityGroupIds"] = os.environ["PACK_EC2_SECURITY_GROUP_IDS"].split(",")
        if os.environ.get("PACK_EC2_KEY_NAME"):
            params["KeyName"] = os.environ["PACK_EC2_KEY_NAME"]
        ec2 = self.client("ec2", region)
        from botocore.exceptions import ClientError

        try:
            resp = ec2.run_instances(**params)
        except ClientError as e:
            raise LaunchError(
                f"EC2 refused to start a {spec.hardware.instance_type} in {region}: "
                f"{e.response['Error'].get('Message') or e.response['Error']['Code']}"
            ) from None
        iid = resp["Instances"][0]["InstanceId"]
        handle["instance_id"] = iid
        self.log(
            f"{spec.launch_id}: started {iid} ({spec.hardware.instance_type}, {region}); waiting until it runs"
        )
        ec2.get_waiter("instance_running").wait(
            InstanceIds=[iid], WaiterConfig={"Delay": 10, "MaxAttempts": 60}
        )

    def execute(self, spec: LaunchSpec, handle: dict) -> None:
        handle["started"] = True  # the user-data runs the rows on its own from boot

    def _instance(self, rec: dict) -> dict | None:
        from botocore.exceptions import ClientError

        iid = rec.get("handle", {}).get("instance_id")
        if not iid:
            return None
        try:
            res = self.client("ec2", self.region_for(rec.get("handle", {}) | rec)).describe_instances(
                InstanceIds=[iid]
            )
        except ClientError as e:
            if e.response["Error"]["Code"] == "InvalidInstanceID.NotFound":
                return None
            raise
        for r in res["Reservations"]:
            for inst in r["Instances"]:
                return inst
        return None

    def poll(self, rec: dict) -> Status:
        sink = open_sink(rec["results"], self.session())
        st = read_status(sink) or {}
        reps = count_reps(sink.keys("runs"))
        inst = self._instance(rec)
        state = inst["State"]["Name"] if inst else "terminated"
        if st.get("state") == "finished":
            return Status(
                "finished",
                f"instance {state}; pack run exited with status {st.get('exit_code')}",
                reps,
                st.get("exit_code"),
            )
        if state in ("shutting-down", "terminated", "stopping", "stopped"):
            return Status(
                "gone",
                f"instance {state} before the rows finished (last status: {st.get('state', 'none')})",
                reps,
            )
        return Status("running", f"instance {state}, {st.get('state', 'booting')}", reps)

    def fetch(self, rec: dict, dest) -> int:
        return fetch_into(open_sink(rec["results"], self.session()), rec["launch_id"], dest)

    def teardown(self, rec: dict) -> str:
        iid = rec.get("handle", {}).get("instance_id")
        if not iid:
            return "no instance was created"
        try:
            inst = self._instance(rec)
            if inst is None or inst["State"]["Name"] in ("shutting-down", "terminated"):
                return f"instance {iid} was already terminated"
        except (
            Exception,
            KeyboardInterrupt,
        ) as e:  # cannot tell its state: terminate anyway (twice is harmless)
            self.log(f"could not read the state of {iid} ({type(e).__name__}); terminating it")
        self.client("ec2", self.region_for(rec.get("handle", {}) | rec)).terminate_instances(
            InstanceIds=[iid]
        )
        return f"terminated instance {iid}"

    def regions(self) -> list[str]:
        found = {h.region for h in catalog.hardware().values() if h.provider == "aws" and h.region}
        if self.session().region_name:
            found.add(self.session().region_name)
        return sorted(found or {"us-east-1"})

    def reap(self, now: float, dry_run: bool) -> list[dict]:
        out = []
        for region in self.regions():
            ec2 = self.client("ec2", region)
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[
                    {"Name": "tag-key", "Values": [TAG_EXPIRES]},
                    {"Name": "instance-state-name", "Values": LIVE_STATES},
                ]
            )
            expired = []
            for page in pages:
                for r in page["Reservations"]:
                    for inst in r["Instances"]:
                        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                        try:
                            expires = float(tags[TAG_EXPIRES])
                        except (KeyError, ValueError):
                            continue
                        if expires < now:
                            expired.append(inst["InstanceId"])
                            out.append(
                                {
                                    "provider": self.provider,
                                    "id": inst["InstanceId"],
                                    "region": region,
                                    "launch_id": tags.get(TAG_ID),
                                    "expired_at": iso(expires),
                                }
                            )
            if expired and not dry_run:
                ec2.terminate_instances(InstanceIds=expired)
        return out

    def where(self, rec: dict) -> str:
        iid = rec.get("handle", {}).get("instance_id") or rec.get("instance_id")
        return f"EC2 instance {iid}" if iid else "EC2"
