"""A private network of test hosts: a Linux bridge, one network namespace per host, a
veth pair per host with one end on the bridge.

Addresses exist only inside the namespaces, plus one on the bridge itself, so that a
server in the root namespace (the vCenter simulator) can listen at an address every
host reaches. Names and the /24 subnet are chosen per run and checked against what the
machine has, so two runs at once never meet. ``remove`` deletes the namespaces, the
links and the bridge, whatever ``create`` got to.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
# Subnets are drawn from 10.200.0.0/16 .. 10.254.0.0/16: far from Docker's own pools
# (172.17.0.0/16 and up; a swarm's ingress takes 10.0.0.0/24).
SUBNET_FIRST_OCTET2, SUBNET_LAST_OCTET2 = 200, 254
HOST_OFFSET = 10     # host i (1-based) is .10+i: 10.x.y.11, 10.x.y.12, ...
ATTEMPTS = 20


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Networks the root namespace has an address or a route in."""
    used = []
    for entry in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for address in entry.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route").stdout or "[]"):
        if route.get("dst", "default") != "default":
            used.append(ipaddress.ip_network(route["dst"], strict=False))
    return used


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for _ in range(ATTEMPTS):
        candidate = ipaddress.ip_network(
            f"10.{random.randint(SUBNET_FIRST_OCTET2, SUBNET_LAST_OCTET2)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise AssertionError(f"no free /24 in 10.{SUBNET_FIRST_OCTET2}-{SUBNET_LAST_OCTET2}.x.0 after {ATTEMPTS} tries")


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


@dataclass
class NetnsHost:
    """One test host: its namespace and its address there (on its ``eth0``)."""

    name: str        # short name: n1, n2, ...
    netns: str       # `ip netns` name
    veth: str        # the root-namespace end of its veth pair (on the bridge)
    address: str     # its IPv4 address, inside the namespace

    @property
    def netns_path(self) -> str:
        """What ``nsenter --net=`` takes."""
        return str(NETNS_DIR / self.netns)


@dataclass
class TestNetwork:
    """The bridge and the hosts on it; ``create`` brings them up, ``remove`` removes them."""

    tag: str                                  # unique per run, in every name
    subnet: ipaddress.IPv4Network
    hosts: list[NetnsHost] = field(default_factory=list)

    __test__ = False   # not a pytest test class, whatever its name

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def bridge_address(self) -> str:
        """The root namespace's address on the bridge: where servers for the hosts listen."""
        return str(self.subnet.network_address + 1)

    @classmethod
    def create(cls, count: int) -> TestNetwork:
        """A bridge with ``count`` hosts, each its namespace, veth pair and address."""
        for _ in range(ATTEMPTS):
            tag = f"vv{secrets.token_hex(3)}"   # 8 characters: link names stay under 15
            if not _link_exists(f"{tag}br") and not any(NETNS_DIR.glob(f"{tag}-*")):
                break
        else:
            raise AssertionError("no unused network name found")
        network = cls(tag=tag, subnet=_free_subnet())
        try:
            network._make_bridge()
            for index in range(1, count + 1):
                network._add_host(index)
        except BaseException:
            network.remove()
            raise
        return network

    def _make_bridge(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.bridge_address}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        # Another run may have taken the same subnet at the same moment: then ours is not
        # the only route to it, and this run gives up rather than share a network.
        routes = json.loads(_ip("-j", "-4", "route", "show", "exact", str(self.subnet)).stdout or "[]")
        others = [r.get("dev") for r in routes if r.get("dev") != self.bridge]
        if others:
            raise AssertionError(f"subnet {self.subnet} is also routed to {others}: another run took it")

    def _add_host(self, index: int) -> None:
        host = NetnsHost(name=f"n{index}", netns=f"{self.tag}-n{index}", veth=f"{self.tag}h{index}",
                         address=str(self.subnet.network_address + HOST_OFFSET + index))
        self.hosts.append(host)
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")

    def remove(self) -> None:
        """Delete the namespaces, the veth ends and the bridge (what exists of them).
        Processes still in a namespace keep it alive: end them first."""
        errors = []
        for host in self.hosts:
            if (NETNS_DIR / host.netns).exists():
                result = _ip("netns", "delete", host.netns, check=False)
                if result.returncode != 0:
                    errors.append(result.stderr.strip())
            if _link_exists(host.veth):
                _ip("link", "delete", host.veth, check=False)
        if _link_exists(self.bridge):
            _ip("link", "delete", self.bridge, check=False)
        left = [name for name in [self.bridge] + [h.veth for h in self.hosts] if _link_exists(name)]
        if errors or left:
            raise AssertionError(f"network {self.tag} not fully removed: links {left} {errors}")
