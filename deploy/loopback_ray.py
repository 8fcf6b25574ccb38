"""`ray` with every node address pinned to 127.0.0.1.

Ray picks a node's outward interface as its address, even when told
--node-ip-address=127.0.0.1, and refuses a second node on one machine when
told to stay on loopback. Airlock's multi-node test (and anyone trying a
cluster on one machine) must keep all traffic on loopback, so this wrapper
pins the address resolution and then runs Ray's own CLI unchanged:

    python deploy/loopback_ray.py start --head --port 6390 \
        --resources '{"airlock_site_training": 1000}'
    python deploy/loopback_ray.py start --address 127.0.0.1:6390 \
        --resources '{"airlock_site_serving": 1000}'

On a real cluster use plain `ray start` with the same --resources.
"""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"  # allow a second node here

import ray._private.services as services  # noqa: E402

LOOPBACK = "127.0.0.1"
services.resolve_ip_for_localhost = lambda host: host  # type: ignore[assignment]
services.get_node_ip_address = lambda address=None: LOOPBACK  # type: ignore[assignment]

from ray.scripts.scripts import main  # noqa: E402

if __name__ == "__main__":
    main()
