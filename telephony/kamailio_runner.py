"""`callbot kamailio`: writes the gateway list and the allowed sources, then runs
Kamailio in the foreground with telephony/kamailio/kamailio.cfg."""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "kamailio" / "kamailio.cfg"


@dataclass(frozen=True)
class KamailioSettings:
    listen: str = "udp:127.0.0.1:5060"
    gateways: str = "sip:127.0.0.1:5080"       # comma-separated SIP URIs of the gateways
    allow: str = "127.0.0.1/32"                 # comma-separated source networks (PBX, trunk)
    flood_requests: int = 30                    # per 2 s and source address, then blocked 5 min
    run_dir: Path = Path("/tmp/callbot-kamailio")

    def __post_init__(self) -> None:
        if not self.listen.startswith("udp:"):
            raise ValueError("listen must look like udp:ADDRESS:PORT")
        for net in self.networks():
            if net.version != 4:
                raise ValueError(f"{net}: only IPv4 sources are supported")
        if not all(uri.startswith("sip:") for uri in self.gateway_uris()):
            raise ValueError("gateways must be sip: URIs")

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n.strip(), strict=False) for n in self.allow.split(",") if n.strip()]

    def gateway_uris(self) -> list[str]:
        return [g.strip() for g in self.gateways.split(",") if g.strip()]


def write_lists(settings: KamailioSettings) -> tuple[Path, Path]:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    address = settings.run_dir / "address.list"
    address.write_text("".join(
        f"1 {net.network_address} {net.prefixlen} 0 allowed\n" for net in settings.networks()))
    dispatcher = settings.run_dir / "dispatcher.list"
    dispatcher.write_text("".join(f"1 {uri}\n" for uri in settings.gateway_uris()))
    return address, dispatcher


def kamailio_command(settings: KamailioSettings) -> list[str]:
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    address, dispatcher = write_lists(settings)
    return [
        binary, "-f", str(CONFIG), "-DD", "-E", "-m", "64", "-M", "8",
        "-A", f"LISTEN={settings.listen}",
        "-A", f'ADDRESS_FILE="{address}"',
        "-A", f'DISPATCHER_FILE="{dispatcher}"',
        "-A", f'CTL_SOCKET="unix:{settings.run_dir / "ctl"}"',
        "-A", f"PIKE_REQS={settings.flood_requests}",
    ]


def run_kamailio(settings: KamailioSettings) -> int:
    """Kamailio takes this process's place: a SIGTERM sent to `callbot kamailio` (by
    `callbot serve` stopping, or a service manager) reaches Kamailio itself."""
    command = kamailio_command(settings)
    os.execv(command[0], command)
    return 1  # not reached
