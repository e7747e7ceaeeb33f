# MicroPython, run by the simulated board each time it starts (micropython -i board_boot.py), before its REPL:
# make the unix port look like a board, then run /boot.py and, in the friendly REPL, /main.py.
# Its settings come from the JSON file named by SENSING_BOARD_SETTINGS (see tests/boards/simulator.py).
# Everything happens inside _boot, so the REPL starts with nothing of it in its globals, as on a board.


def _boot():
    import json
    import os
    import sys

    import machine

    with open(os.getenv("SENSING_BOARD_SETTINGS")) as f:
        settings = json.loads(f.read())
    ready = open(settings["ready"], "w")  # opened now, while the host's filesystem is still at "/"
    os.umount("/")
    os.mount(os.VfsPosix(settings["root"]), "/")
    os.chdir("/")
    while sys.path:
        sys.path.pop()
    for entry in ("", ".frozen", "/lib"):
        sys.path.append(entry)

    class Module:
        pass

    def like(module, **extra):
        copy = Module()
        for name in dir(module):
            if not name.startswith("__"):
                setattr(copy, name, getattr(module, name))
        for name in extra:
            setattr(copy, name, extra[name])
        return copy

    implementation = sys.implementation
    if settings["version"]:  # the MicroPython the simulated board has installed, as it says
        implementation = like(sys.implementation, version=tuple(settings["version"]) + ("",))

    class Uname:
        sysname = nodename = settings["platform"]
        release = ".".join(str(n) for n in implementation.version[:3])
        version = "v" + release + " (simulated)"
        machine = settings["machine"]

    def reset():
        sys.exit(settings["reset_status"])

    def bootloader():  # the simulator takes the board into BOOTSEL when MicroPython ends with this status
        sys.exit(settings["bootloader_status"])

    def unique_id():
        import binascii

        return binascii.unhexlify(settings["unique_id"])

    def soft_reset():
        sys.exit(0)

    def ilistdir(path=""):  # as littlefs and FAT do, and VfsPosix does not: with each file's size
        for entry in os.ilistdir(path) if path else os.ilistdir():
            size = 0
            if entry[1] == 0x8000:
                size = os.stat((path.rstrip("/") + "/" if path else "") + entry[0])[6]
            yield (entry[0], entry[1], entry[2], size)

    def rename(old, new):  # the unix port's VfsPosix mounted at "/" fails on absolute paths here; boards do not
        cwd = os.getcwd()
        os.chdir("/")
        try:
            os.rename(from_root(old, cwd), from_root(new, cwd))
        finally:
            os.chdir(cwd)

    def from_root(path, cwd):
        if not path.startswith("/"):
            path = cwd.rstrip("/") + "/" + path
        return path.lstrip("/")

    machine_extra = {"reset": reset, "soft_reset": soft_reset, "unique_id": unique_id}
    if settings["bootloader_status"] is not None:
        machine_extra["bootloader"] = bootloader
    sys.modules["sys"] = like(sys, platform=settings["platform"], implementation=implementation)
    sys.modules["os"] = like(os, uname=lambda: Uname, ilistdir=ilistdir, rename=rename)
    sys.modules["machine"] = like(machine, **machine_extra)

    def run(path):
        try:
            os.stat(path)
        except OSError:
            return
        try:
            with open(path) as f:
                code = f.read()
            exec(compile(code, path, "exec"), {"__name__": "__main__"})
        except SystemExit:
            raise
        except BaseException as e:  # a KeyboardInterrupt too: Ctrl-C stops main.py and the REPL starts
            sys.print_exception(e)

    ready.write("ready")
    ready.close()  # Ctrl-C from now on is a KeyboardInterrupt, not the end of the process (see simulator.py)
    run("boot.py")
    if settings["run_main"]:
        run("main.py")


_boot()
del _boot
