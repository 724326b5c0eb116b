"""Podman for the container tests: whether it can run here, the base image, building the image.

What works on these machines (found by trying): Debian's podman with runc and
cgroupfs (crun refuses their cgroups), and /etc/containers/containers.conf
holding ``default_ulimits = []`` (they refuse to raise rlimits); ``.ci/run``
writes that file. No image registry is reachable, so the base image the
Dockerfile names is made here: ``debootstrap --variant=minbase bookworm``
from the Debian mirror apt already uses, slimmed the way the official
``debian:bookworm-slim`` is (no documentation, manual pages or translations,
apt caches cleaned), and imported under that exact name, so the same
Dockerfile builds unchanged where the registry is reachable. It is made once
and kept by podman; later runs reuse it.

pip inside the build gets this machine's CA bundle and pip settings as build
secrets: mounted for that one step, never stored in a layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.summaries import Lines

#: The name the Dockerfile's FROM lines resolve to.
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
SUITE = "bookworm"
#: Global options every podman call gets on these machines.
GLOBAL_OPTIONS = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
#: Serialises base image and image builds between test sessions on one machine.
LOCK_FILE = Path(tempfile.gettempdir()) / "shotgun_events-container-tests.lock"

#: As in the official slim images: no documentation (but the copyright files),
#: manual pages or translations, now and for every package installed later.
DPKG_EXCLUDES = """\
# As in the official debian:*-slim images (written by the shotgun_events tests).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
#: The official images' apt settings: no package caches left in a layer, no translations.
APT_SETTINGS = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"


class UnavailableError(Exception):
    """Podman cannot build or run containers on this machine; the message says why."""


def command(*args: str) -> list[str]:
    """The podman command line with this machine's global options."""
    return ["podman", *GLOBAL_OPTIONS, *args]


def podman(
    *args: str,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one podman command and return it; raise with its output when it fails."""
    done = subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args[:3])} ... exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def why_not() -> str | None:
    """The reason podman cannot run containers here, or None when it can (before any image)."""
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (.ci/run installs them with apt-get)"
    if os.geteuid() != 0:
        return "the container tests need root (rootful podman, and debootstrap for the base image)"
    if "default_ulimits" not in _read(CONTAINERS_CONF):
        return (
            f"{CONTAINERS_CONF} does not set default_ulimits = [] (these machines refuse to "
            "raise rlimits, so every container would fail to start); .ci/run writes it"
        )
    try:
        info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if info.returncode != 0:
        return f"podman info failed: {_last_line(info.stderr)}"
    return None


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the machine-wide lock of these tests (two sessions must not build the base at once)."""
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base_image(log: Lines) -> float | None:
    """Make the base image unless podman has it; return the seconds it took, None when cached."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        log.append(f"base image {BASE_IMAGE}: kept from an earlier run")
        return None
    if shutil.which("debootstrap") is None:
        raise UnavailableError(
            f"{BASE_IMAGE} is missing and debootstrap is not installed to make it "
            "(.ci/run installs it)"
        )
    started = time.monotonic()
    mirror, security = debian_mirrors(Path("/etc/apt"))
    with tempfile.TemporaryDirectory(prefix="shotgun_events-base-", dir="/var/tmp") as folder:
        root = Path(folder) / "root"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), mirror],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise UnavailableError(
                f"debootstrap of {SUITE} from {mirror} failed: " + " | ".join(tail)
            )
        slim(root, mirror, security)
        archive = Path(folder) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(archive), "."],
            check=True,
            timeout=300,
        )
        podman("import", "--change", 'CMD ["bash"]', str(archive), BASE_IMAGE, timeout=300)
    seconds = time.monotonic() - started
    log.append(f"base image {BASE_IMAGE}: made with debootstrap from {mirror} in {seconds:.0f} s")
    return seconds


def debian_mirrors(apt: Path) -> tuple[str, str]:
    """(Debian mirror, security mirror) from apt's sources lists: the ones apt already uses."""
    mirror = security = None
    for uri, suites in _sources(apt):
        if uri.startswith("file:"):
            continue
        if security is None and any(s.endswith("-security") for s in suites):
            security = uri
        elif mirror is None and uri.rstrip("/").endswith("/debian"):
            mirror = uri
    return (mirror or DEFAULT_MIRROR).rstrip("/"), (security or DEFAULT_SECURITY).rstrip("/")


def _sources(apt: Path) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` entry, one-line and deb822 formats."""
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in files:
        text = _read(path)
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip().lower(), value.strip())
                    for key, _, value in (
                        line.partition(":") for line in stanza.splitlines() if ":" in line
                    )
                    if not key.startswith("#")
                )
                if "deb" in fields.get("types", "").split() and fields.get("enabled") != "no":
                    for uri in fields.get("uris", "").split():
                        yield uri, fields.get("suites", "").split()
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]


def slim(root: Path, mirror: str, security: str) -> None:
    """Make a debootstrap tree look like the official slim image: content, apt and dpkg settings."""
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(DPKG_EXCLUDES)
    for name, text in APT_SETTINGS.items():
        (root / "etc/apt/apt.conf.d" / name).write_text(text)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        f"Signed-By: {keyring}\n\nTypes: deb\nURIs: {security}\nSuites: {SUITE}-security\n"
        f"Components: main\nSigned-By: {keyring}\n"
    )
    share = root / "usr/share"
    for folder in ("doc", "groff", "info", "linda", "lintian", "locale", "man"):
        for entry in sorted((share / folder).glob("*")):
            if folder == "doc" and entry.is_dir() and not entry.is_symlink():
                for item in entry.iterdir():
                    if item.name != "copyright":
                        _remove(item)
            else:
                _remove(entry)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for entry in root.glob(pattern):
            _remove(entry)
    for entry in root.glob("var/log/**/*"):
        if entry.is_file():
            entry.write_bytes(b"")
    # debootstrap copies the host's; podman mounts its own in every container.
    for name in ("etc/hostname", "etc/resolv.conf"):
        (root / name).write_text("")


def pip_settings(environ: Mapping[str, str]) -> tuple[str, Path | None]:
    """(pip.conf for a build on this machine, the CA bundle pip trusts here).

    Only what applies inside a build is kept: the certificate bundle (mounted at
    the Debian path pip.conf then names), http(s) indexes, trusted hosts, proxy
    and timeout. Paths of this machine (constraints, find-links, file:// indexes)
    mean nothing in a container and are left out.
    """
    found = _pip_config_list()
    for key, env in (
        ("cert", "PIP_CERT"),
        ("index-url", "PIP_INDEX_URL"),
        ("extra-index-url", "PIP_EXTRA_INDEX_URL"),
        ("trusted-host", "PIP_TRUSTED_HOST"),
        ("proxy", "PIP_PROXY"),
        ("timeout", "PIP_DEFAULT_TIMEOUT"),
    ):
        if environ.get(env):
            found[key] = environ[env]
    lines = ["[global]"]
    ca = Path(found["cert"]) if found.get("cert") else Path("/etc/ssl/certs/ca-certificates.crt")
    bundle = ca if ca.is_file() else None
    if bundle is not None:
        lines.append("cert = /etc/ssl/certs/ca-certificates.crt")
    for key in ("index-url", "extra-index-url"):
        urls = [u for u in found.get(key, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            lines.append(f"{key} = {' '.join(urls)}")
    for key in ("trusted-host", "proxy", "timeout"):
        if found.get(key):
            lines.append(f"{key} = {found[key]}")
    return "\n".join(lines) + "\n", bundle


def _pip_config_list() -> dict[str, str]:
    """``pip config list``: the settings of every pip.conf pip reads here (later ones win)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        section, _, key = name.partition(".")
        if section in ("global", "install") and value:
            found[key] = value.strip().strip("'\"")
    return found


def build_image(repo: Path, tag: str, folder: Path, log: Lines) -> tuple[str, float]:
    """Build the repository's Dockerfile as ``tag``; return (image id, seconds)."""
    text, bundle = pip_settings(os.environ)
    pip_conf = folder / "pip.conf"
    pip_conf.write_text(text)
    iid = folder / "iid"
    args = ["build", "--format", "docker", "--iidfile", str(iid), "--tag", tag]
    args += ["--secret", f"id=pip.conf,src={pip_conf}"]
    if bundle is not None:
        args += ["--secret", f"id=ca-certificates.crt,src={bundle}"]
    args += ["--file", str(repo / "Dockerfile"), str(repo)]
    started = time.monotonic()
    podman(*args, timeout=1800)
    seconds = time.monotonic() - started
    log.append(f"image build: {seconds:.0f} s")
    return iid.read_text().strip(), seconds


def image_size(image: str) -> int:
    """The image's size in bytes, as podman counts it (all layers, uncompressed)."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def build_simple(
    containerfile: Path, tag: str, log: Lines, context: Path | None = None
) -> float | None:
    """Build a test-only image from ``containerfile`` unless ``tag`` exists; seconds or None."""
    if podman("image", "exists", tag, check=False).returncode == 0:
        return None
    started = time.monotonic()
    context = context or containerfile.parent
    podman(
        "build",
        "--format",
        "docker",
        "--tag",
        tag,
        "--file",
        str(containerfile),
        str(context),
        timeout=900,
    )
    seconds = time.monotonic() - started
    log.append(f"{tag}: built in {seconds:.0f} s")
    return seconds


def remove_containers(names: Sequence[str]) -> None:
    """Remove containers by name, running or not; missing ones are fine."""
    if names:
        podman("rm", "--force", "--ignore", "--time", "5", *names, timeout=120, check=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
