"""Foreign Python environments for tests: numpy + one TFLite interpreter, no TensorFlow.

* :func:`isolated_venv` - an x86-64 venv with ``tflite-runtime`` or ``ai-edge-litert``.
* :func:`debian_venv` - a user's own venv of Debian's Python under qemu (``python3 -m venv
  --system-site-packages``), into which a test runs ``pip install ./device`` as on the device.
* :func:`arm_python` - Debian bookworm's Python 3.11 of an ARM architecture (``arm64`` under
  ``qemu-aarch64-static``, ``armhf`` under ``qemu-arm-static``; user emulation, no binfmt, no
  chroot), with that architecture's wheels unpacked into a site dir on ``PYTHONPATH``. What
  Debian provides instead of a wheel (numpy on armhf, where PyPI has no armv7l wheel) comes from
  the rootfs, and pip resolves the other wheels against Debian's versions.

Everything is cached under ``cache_root`` and built atomically (temp dir, marker file
written last, rename), so an interrupted build is redone and a finished one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.once import exclusive

__all__ = [
    "ARCHES",
    "FLAVOURS",
    "DebianVenv",
    "ForeignEnvBuildError",
    "ForeignEnvUnavailable",
    "ForeignPython",
    "arm_python",
    "check_no_tensorflow",
    "debian_venv",
    "isolated_venv",
]

# flavour -> (pip requirements, distribution name, interpreter module)
FLAVOURS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "tflite-runtime": (("tflite-runtime==2.14.0", "numpy<2"), "tflite-runtime", "tflite_runtime.interpreter"),
    "litert": (("ai-edge-litert", "numpy"), "ai-edge-litert", "ai_edge_litert.interpreter"),
    "numpy": (("numpy",), "numpy", "numpy"),  # no interpreter: the numpy engine (no wheel for the platform)
}
_LAYOUT = 2  # bump to invalidate every cache entry
_MARKER = ".complete.json"
_SUITE = "bookworm"  # glibc 2.36, Python 3.11
_DEBIAN_VERSIONS = "debian-python.json"  # in a rootfs: project -> version of what Debian installed


@dataclass(frozen=True)
class ArmArch:
    """How a Debian ARM architecture runs here, and which Python projects Debian provides on it."""

    qemu: str  # the qemu-user binary
    cpu: str  # qemu's -cpu: a Raspberry Pi class core
    cpuinfo: str  # one core's /proc/cpuinfo lines (after "processor")
    machine: str  # the wheels' platform suffix
    debian_python: dict[str, str] = field(default_factory=dict)  # project -> Debian package
    suite: str = _SUITE
    python: str = "3.11"  # the suite's Python
    debian_arch: str = ""  # the Debian architecture, where the key is not one ("armhf-trixie")
    debian_tools: tuple[str, ...] = ()  # more Debian packages, no project to pin (python3-venv)

    def platforms(self) -> tuple[str, ...]:
        """Wheel platforms up to bookworm's glibc 2.36 (tflite-runtime 2.14 is manylinux_2_34)."""
        return (f"manylinux2014_{self.machine}", *(f"manylinux_2_{m}_{self.machine}" for m in range(17, 37)))

    def proc_cpuinfo(self, cores: int = 2) -> str:
        return "".join(f"processor\t: {i}\n{self.cpuinfo}\n" for i in range(cores))


# qemu-user shows the guest the host's x86 /proc/cpuinfo, on which XNNPACK's cpuinfo (ai-edge-litert
# 2.3) segfaults in allocate_tensors. Emulate a Raspberry Pi class CPU and describe it in a
# rootfs /proc/cpuinfo, which qemu -L serves instead of the host's (other /proc files fall through).
ARCHES: dict[str, ArmArch] = {
    # Raspberry Pi 4 (64-bit OS)
    "arm64": ArmArch(
        "qemu-aarch64-static", "cortex-a72",
        "BogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n",
        "aarch64",
    ),
    # Raspberry Pi 2 (the oldest armv7 Pi). PyPI has no armv7l numpy or cffi wheel: Debian's instead.
    "armhf": ArmArch(
        "qemu-arm-static", "cortex-a7",
        "model name\t: ARMv7 Processor rev 5 (v7l)\nBogoMIPS\t: 38.40\nFeatures\t: half thumb fastmult vfp "
        "edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm\nCPU implementer\t: 0x41\n"
        "CPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xc07\nCPU revision\t: 5\n",
        "armv7l",
        {"numpy": "python3-numpy", "cffi": "python3-cffi"},
        debian_arch="armhf",
    ),
}
# Where no interpreter wheel exists: the numpy engine alone, on Debian's own Python and numpy. These
# rootfs also hold python3-venv and python3-pip, for a user's own venv and `pip install ./device`.
_VENV = ("python3-venv", "python3-pip")
ARCHES["armhf-trixie"] = ArmArch("qemu-arm-static", "cortex-a7", ARCHES["armhf"].cpuinfo, "armv7l",
                                 {"numpy": "python3-numpy"}, "trixie", "3.13", "armhf", _VENV)  # 32-bit Trixie
ARCHES["armel"] = ArmArch(  # the Pi Zero / Zero W / 1's ARM1176 (Trixie's armel .debs: not on the mirror)
    "qemu-arm-static", "arm1176",
    "model name\t: ARMv6-compatible processor rev 7 (v6l)\nBogoMIPS\t: 697.95\nFeatures\t: half thumb fastmult "
    "vfp edsp java tls\nCPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xb76\n"
    "CPU revision\t: 7\n", "armv6l", {"numpy": "python3-numpy"}, debian_arch="armel", debian_tools=_VENV)
ARCHES["riscv64"] = ArmArch("qemu-riscv64-static", "rv64", "isa\t\t: rv64imafdc\nmmu\t\t: sv39\n", "riscv64",
                            {"numpy": "python3-numpy"}, "trixie", "3.13", debian_tools=_VENV)
_PROBE = (
    "import importlib, platform, sys\n"
    "from importlib.metadata import version\n"
    "importlib.import_module(sys.argv[1])\n"
    "print(platform.machine(), platform.python_version(), *(f'{d} {version(d)}' for d in sys.argv[2:]), sep='|')\n"
)


class ForeignEnvUnavailable(RuntimeError):
    """A host tool needed to build the environment is missing (tests may skip)."""


class ForeignEnvBuildError(RuntimeError):
    """A build step failed (e.g. no access to PyPI or the Debian mirror)."""


@dataclass(frozen=True)
class ForeignPython:
    """A Python interpreter command plus the site dirs it needs, run with a clean environment."""

    command: tuple[str, ...]
    root: Path
    interpreter_module: str
    description: str
    site_dirs: tuple[Path, ...] = ()

    def run(
        self,
        args: Sequence[str],
        *,
        pythonpath: Sequence[Path] = (),
        input: str | None = None,
        timeout: float = 600.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python *args``; only ``pythonpath`` and the env's own site dirs are importable;
        ``env``: variables added to the clean environment."""
        variables = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "PYTHONNOUSERSITE": "1",
            "PYTHONPYCACHEPREFIX": str(self.root / ".pycache"),  # keeps qemu restarts fast
            **(env or {}),
        }
        paths = [str(p) for p in (*pythonpath, *self.site_dirs)]
        if paths:
            variables["PYTHONPATH"] = os.pathsep.join(paths)
        return subprocess.run(
            [*self.command, *args], env=variables, input=input, text=True, capture_output=True,
            timeout=timeout, cwd=cwd or self.root, check=False,
        )


def check_no_tensorflow(py: ForeignPython) -> None:
    """Assert that ``import tensorflow`` fails inside ``py``."""
    proc = py.run(["-c", "import tensorflow"])
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, (
        f"tensorflow is importable in {py.description}: rc={proc.returncode} {proc.stderr[-500:]}"
    )


def isolated_venv(kind: str, cache_root: Path, extra: Sequence[str] = ()) -> ForeignPython:
    """An x86-64 venv (host Python) holding only numpy, the ``kind`` interpreter and ``extra``."""
    reqs, dist, module = _flavour(kind)
    reqs = (*reqs, *extra)
    target = Path(cache_root) / f"{kind}-{_digest('venv', reqs)}"

    def build(dest: Path) -> str:
        _check([sys.executable, "-m", "venv", str(dest)])
        _check([str(dest / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs])
        return _describe(ForeignPython((str(dest / "bin" / "python"),), dest, module, ""), (dist, "numpy"), "venv")

    description = _cached(target, build)
    return ForeignPython((str(target / "bin" / "python"),), target, module, description)


def arm_python(cache_root: Path, flavour: str = "litert", arch: str = "arm64",
               extra: Sequence[str] = ()) -> ForeignPython:
    """Debian's ``arch`` Python (bookworm's 3.11, or the suite ``ARCHES`` names) under qemu with
    ``flavour`` and ``extra`` wheels."""
    spec = ARCHES[arch]
    reqs, dist, module = _flavour(flavour)
    qemu, debootstrap = _host_tools(spec)
    rootfs = _arm_rootfs(Path(cache_root), arch, debootstrap, qemu)
    command = (qemu, "-cpu", spec.cpu, "-L", str(rootfs), str(rootfs / "usr" / "bin" / f"python{spec.python}"))
    abi = "cp" + spec.python.replace(".", "")
    flags = ["--only-binary=:all:", "--python-version", spec.python, "--implementation", "cp", "--abi", abi]
    flags += [f"--platform={p}" for p in spec.platforms()]
    debian = json.loads((rootfs / _DEBIAN_VERSIONS).read_text())
    reqs = (*reqs, *extra, *(f"{name}=={version}" for name, version in debian.items()))
    target = Path(cache_root) / f"{arch}-{flavour}-{_digest(rootfs.name, reqs, flags)}"

    def build(dest: Path) -> str:
        site = _unpack_wheels(dest, [*flags, *reqs], debian)
        dists = (dist, "numpy", *(_project(r) for r in extra))
        return _describe(ForeignPython(command, dest, module, "", (site,)), dists, f"under qemu ({spec.cpu})")

    description = _cached(target, build)
    return ForeignPython(command, target, module, description, (target / "site",))


@dataclass(frozen=True)
class DebianVenv:
    """A venv of Debian's Python under qemu, made with ``--system-site-packages`` (Debian's numpy and
    pip). Its scripts run from the host as on the device: the interpreter they name is a host shell
    script that starts qemu, as binfmt would (there is none here)."""

    root: Path
    description: str  # machine, Python, Debian's numpy and pip
    pycache: Path  # shared by every run on the rootfs: qemu compiles the stdlib once

    def run(self, program: str, args: Sequence[str], *, cwd: Path, timeout: float = 1800.0
            ) -> subprocess.CompletedProcess[str]:
        """Run ``bin/program *args`` of the venv in a clean environment (pip: no host config)."""
        return subprocess.run([str(self.root / "bin" / program), *args], env=_venv_env(self.root, cwd, self.pycache),
                              text=True, capture_output=True, timeout=timeout, cwd=cwd, check=False)


def _venv_env(venv: Path, home: Path, pycache: Path) -> dict[str, str]:
    """A fresh Pi's environment: no host pip config (its index and constraints are this machine's);
    the host's proxy settings, where it has any, as the device would have its own."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "PYTHONNOUSERSITE": "1",
           "PYTHONPYCACHEPREFIX": str(pycache), "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proxies = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    return {**env, **{k: os.environ[k] for k in proxies if k in os.environ}}


def debian_venv(cache_root: Path, arch: str, dest: Path, uname_machine: str | None = None) -> DebianVenv:
    """``python3 -m venv --system-site-packages dest`` with ``arch``'s Debian Python (cached rootfs).

    ``--without-pip``: ensurepip copies Debian's pip wheel from /usr/share/python-wheels, which
    qemu 7.2 cannot find under ``-L`` (it passes statx paths to the host untranslated); Debian's
    python3-pip, the same pip, serves the venv through its system site-packages instead.
    ``uname_machine``: what ``os.uname()`` reports inside the venv (a 64-bit kernel under a 32-bit
    userland: qemu-arm reports its own CPU), set by a ``.pth`` file of the venv."""
    spec = ARCHES[arch]
    if "python3-pip" not in spec.debian_tools:
        raise ValueError(f"{arch}: its rootfs has no python3-venv/python3-pip (ARCHES[...].debian_tools)")
    qemu, debootstrap = _host_tools(spec)
    rootfs = _arm_rootfs(Path(cache_root), arch, debootstrap, qemu)
    python, pycache = _qemu_launcher(rootfs, spec, qemu), rootfs.parent / f"pycache-{rootfs.name}"
    made = subprocess.run([str(python), "-m", "venv", "--without-pip", "--system-site-packages", str(dest)],
                          env=_venv_env(dest, dest.parent, pycache), capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise ForeignEnvBuildError(f"python3 -m venv failed: {made.stderr[-2000:]}")
    if uname_machine:
        site = dest / "lib" / f"python{spec.python}" / "site-packages"
        (site / "_uname_machine.pth").write_text(_UNAME_PTH.format(machine=uname_machine))
    venv = DebianVenv(dest, "", pycache)
    probe = venv.run("python", ["-c", _VENV_PROBE], cwd=dest.parent, timeout=900)
    if probe.returncode != 0:
        raise ForeignEnvBuildError(f"probe failed in the venv of {arch}: {probe.stderr[-2000:]}")
    return DebianVenv(dest, f"Debian {spec.suite} {arch} under qemu ({spec.cpu}): {probe.stdout.strip()}", pycache)


# One line a .pth file runs at start-up (site.py runs the lines that begin with "import").
_UNAME_PTH = "import os; os.uname = (lambda real: lambda: os.uname_result((*real()[:4], {machine!r})))(os.uname)\n"
_VENV_PROBE = (
    "import platform, struct, sys, numpy, pip\n"
    "print(f'{platform.machine()}, {struct.calcsize(\"P\") * 8}-bit Python {platform.python_version()}, '\n"
    "      f'numpy {numpy.__version__} and pip {pip.__version__} from Debian')\n"
)


def _qemu_launcher(rootfs: Path, spec: ArmArch, qemu: str) -> Path:
    """``rootfs/usr/local/bin/pythonX.Y``: a host script that runs the rootfs's Python under qemu,
    with ``argv[0]`` as called (a venv's ``bin/python`` link: Python then finds its ``pyvenv.cfg``).
    It lives in the rootfs because Python finds its stdlib by searching up from it."""
    launcher = rootfs / "usr" / "local" / "bin" / f"python{spec.python}"
    text = (f'#!/bin/sh\nexec {qemu} -cpu {spec.cpu} -L {rootfs} -0 "$0" '
            f'{rootfs / "usr" / "bin" / f"python{spec.python}"} "$@"\n')
    if not launcher.is_file() or launcher.read_text() != text:  # written once per rootfs and host
        launcher.parent.mkdir(parents=True, exist_ok=True)
        tmp = launcher.with_name(f".{launcher.name}.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.rename(launcher)
    return launcher


def _host_tools(spec: ArmArch) -> tuple[str, str]:
    """qemu-user and debootstrap, or :class:`ForeignEnvUnavailable`."""
    qemu = shutil.which(spec.qemu)
    debootstrap = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    missing = [n for n, p in (("qemu-user-static", qemu), ("debootstrap", debootstrap)) if p is None]
    if missing:
        raise ForeignEnvUnavailable(f"{spec.qemu} and debootstrap needed: apt-get install -y {' '.join(missing)}")
    assert qemu is not None and debootstrap is not None
    return qemu, debootstrap


def _unpack_wheels(dest: Path, pip_args: Sequence[str], debian: dict[str, str]) -> Path:
    """``pip download`` into ``dest``, resolved against ``debian``'s projects (name -> version,
    stand-in wheels), and every wheel but those unpacked into ``dest/site``."""
    wheels, site, stubs = dest / "wheels", dest / "site", dest / "debian-stubs"
    stubs.mkdir()
    for name, version in debian.items():
        _stub_wheel(stubs, name, version)
    _check([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "-d", str(wheels), "--find-links", str(stubs), *pip_args])
    for whl in sorted(wheels.glob("*.whl")):
        if _project(whl.name.split("-")[0]) not in debian:
            with zipfile.ZipFile(whl) as zf:
                zf.extractall(site)
    shutil.rmtree(wheels)
    shutil.rmtree(stubs)
    return site


def _project(requirement: str) -> str:
    """The normalized project name of a requirement or a wheel file name's first part."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _stub_wheel(folder: Path, name: str, version: str) -> None:
    """An empty wheel standing for a project Debian installed, so that pip resolves against it."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: edge-lstm-tests\nRoot-Is-Purelib: true\n"
                                    "Tag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


def _arm_rootfs(cache_root: Path, arch: str, debootstrap: str, qemu: str) -> Path:
    """First-stage debootstrap of ``arch``'s suite, plus the ``--include``'d python3 closure."""
    if os.geteuid() != 0:
        raise ForeignEnvUnavailable("debootstrap (arm_python) must run as root")
    spec = ARCHES[arch]
    include = ",".join(("python3", *spec.debian_python.values(), *spec.debian_tools))
    target = cache_root / f"rootfs-{arch}-{_digest(spec.suite, 'minbase', include)}"

    def build(dest: Path) -> str:
        _check([debootstrap, "--foreign", f"--arch={spec.debian_arch or arch}", "--variant=minbase", f"--include={include}",
                spec.suite, str(dest), _debian_mirror()])
        # --foreign unpacks only the Required set; the other packages are merely downloaded.
        meta = dest / "debootstrap"
        debpaths = dict(line.split(maxsplit=1) for line in (meta / "debpaths").read_text().splitlines())
        for pkg in (meta / "base").read_text().split():
            data = _check(["dpkg-deb", "--fsys-tarfile", str(dest / debpaths[pkg].lstrip("/"))])
            # --keep-directory-symlink: keep merged-/usr links (/lib -> usr/lib) intact
            _check(["tar", "-x", "--keep-directory-symlink", "-C", str(dest)], stdin=data)
        for deb in (dest / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        _link_alternatives(dest)
        # qemu -L falls back to host paths that are missing in the rootfs: shadow the host's .pth dir
        (dest / "usr" / "local" / "lib" / f"python{spec.python}" / "dist-packages").mkdir(parents=True, exist_ok=True)
        proc = dest / "proc"
        if proc.is_symlink():  # debootstrap links proc -> /proc when it runs inside a container
            proc.unlink()
        proc.mkdir(exist_ok=True)
        (proc / "cpuinfo").write_text(spec.proc_cpuinfo())
        py = [qemu, "-cpu", spec.cpu, "-L", str(dest), str(dest / "usr" / "bin" / f"python{spec.python}"), "-c"]
        versions = _check([*py, _DEBIAN_PROBE, *spec.debian_python]).decode()
        (dest / _DEBIAN_VERSIONS).write_text(versions)
        return f"Debian {spec.suite} {arch} rootfs: " + _check([*py, _ROOTFS_PROBE]).decode().strip()

    _cached(target, build)
    return target


_ROOTFS_PROBE = "import platform, ssl; print(platform.machine(), platform.python_version())"
# The upstream versions of what Debian installed (as Python sees them), to pin pip's resolution to.
_DEBIAN_PROBE = (
    "import importlib.metadata, json, sys\n"
    "print(json.dumps({name: importlib.metadata.version(name) for name in sys.argv[1:]}))\n"
)


def _link_alternatives(rootfs: Path) -> None:
    """The links update-alternatives would make (never run here): libblas.so.3 -> blas/libblas.so.3."""
    for lib in rootfs.glob("usr/lib/*/*/lib*.so.*"):
        link = lib.parent.parent / lib.name
        soname = re.fullmatch(r"lib\w+\.so\.\d+", lib.name)
        if lib.parent.name in ("blas", "lapack") and soname and not link.exists() and not link.is_symlink():
            link.symlink_to(f"{lib.parent.name}/{lib.name}")


def _flavour(kind: str) -> tuple[tuple[str, ...], str, str]:
    if kind not in FLAVOURS:
        raise ValueError(f"unknown flavour {kind!r}; expected one of {sorted(FLAVOURS)}")
    return FLAVOURS[kind]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps([_LAYOUT, *parts], default=list).encode()).hexdigest()[:12]


def _describe(py: ForeignPython, dists: Sequence[str], how: str) -> str:
    """Import the interpreter module inside ``py`` (validating the build) and describe it."""
    proc = py.run(["-c", _PROBE, py.interpreter_module, *dists], timeout=900)
    if proc.returncode != 0:
        raise ForeignEnvBuildError(f"probe failed in {py.command}: {proc.stderr[-2000:]}")
    machine, version, *versions = proc.stdout.strip().split("|")
    return f"{machine} Python {version} {how}, " + ", ".join(versions)


def _cached(target: Path, build: Callable[[Path], str]) -> str:
    """Return the description stored in ``target``'s marker, building ``target`` first if needed.
    One builder at a time (``pytest -n 2``'s workers want the same environments): the second waits
    for the first's build and reuses it."""
    marker = target / _MARKER
    if not marker.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(target.parent / f".{target.name}.lock"):
            if not marker.is_file():
                _build_into(target, build)
    return str(json.loads(marker.read_text())["description"])


def _build_into(target: Path, build: Callable[[Path], str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        description = build(tmp)
        (tmp / _MARKER).write_text(json.dumps({"description": description}))
        if target.exists():
            shutil.rmtree(target)  # leftover of an interrupted, non-atomic build
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _debian_mirror() -> str:
    """The Debian archive URI apt on this host uses: no archive's host name is written here."""
    sources = Path("/etc/apt")
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list")),
             *sorted((sources / "sources.list.d").glob("*.sources"))]
    for file in files:
        text = file.read_text(errors="replace") if file.is_file() else ""
        for line in text.splitlines():
            match = re.match(r"\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+/debian)/?\s", line + " ")
            if match:
                return match.group(1)
    raise ForeignEnvUnavailable("no Debian archive in apt's sources (/etc/apt): debootstrap needs one")


def _check(cmd: list[str], *, stdin: bytes | None = None) -> bytes:
    """Run a build step; return its stdout or raise with the tail of its stderr."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise ForeignEnvUnavailable(f"missing host tool: {cmd[0]}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-2000:]
        raise ForeignEnvBuildError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}): {err}")
    return proc.stdout
