"""A fork server for the documented commands (tests/docs/test_doc_commands.py).

Every documented tool run would otherwise pay the import of torch, mmcv,
mmengine, mmseg and the package (several seconds each, for a few seconds
of work on tiny data). The server imports them once; each ``python
tools/<tool>.py ...`` of a page is a small client that hands the server
its arguments, working directory, environment and standard streams, and
the server forks a child that runs the tool there and reports its exit
status. A child starts from the server's pristine state (no tool has run
in the server), so runs do not see each other.

    python doc_command_server.py serve SOCKET     (prints "ready")
    python -S doc_command_server.py run SOCKET SCRIPT ARGS...
"""
import json
import os
import socket
import sys

#: What every tool imports; imported once, before the first fork.
PRELOAD = ('torch', 'mmengine.runner', 'mmseg.apis', 'mmseg_ood',
           'mmseg_ood.apis', 'mmseg_ood.engine', 'mmseg_ood.reports',
           'matplotlib.pyplot')


def _read_message(conn):
    """One request: a JSON text and the three standard streams' fds."""
    chunks, fds = [], []
    while True:
        data, new_fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        fds += new_fds
        if not data:
            break
        chunks.append(data)
        if data.endswith(b'\n'):
            break
    return json.loads(b''.join(chunks)), fds


def _child(request, fds):
    """Run the request's script as ``__main__``; never returns."""
    import runpy
    import traceback
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    code = 0
    try:
        os.chdir(request['cwd'])
        os.environ.clear()
        os.environ.update(request['env'])
        script = os.path.abspath(request['argv'][0])
        sys.argv = [script] + request['argv'][1:]
        sys.path[0] = os.path.dirname(script)
        runpy.run_path(script, run_name='__main__')
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(code)


def serve(path):
    """Import :data:`PRELOAD`, then run one request at a time."""
    import importlib
    os.environ.setdefault('MPLBACKEND', 'Agg')
    for name in PRELOAD:
        importlib.import_module(name)
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    print('ready', flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            request, fds = _read_message(conn)
            if request.get('stop'):
                return
            pid = os.fork()
            if pid == 0:
                server.close()
                _child(request, fds)
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())


def request(path, message, fds=()):
    """Send one request; return the server's answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(message).encode() + b'\n'],
                        list(fds))
        conn.shutdown(socket.SHUT_WR)
        answer = b''
        while True:
            data = conn.recv(64)
            if not data:
                return answer.decode()
            answer += data


def run(path, argv):
    """The client: run ``argv`` in the server with this process's working
    directory, environment and standard streams; exit with its status."""
    answer = request(path, dict(argv=argv, cwd=os.getcwd(),
                                env=dict(os.environ)), fds=(0, 1, 2))
    sys.exit(int(answer) if answer else 1)


if __name__ == '__main__':
    if sys.argv[1] == 'serve':
        serve(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3:])
