# gunicorn settings for the differential "flask" echo backend.
# Everything not set here is gunicorn's default (header_map="drop",
# forwarded_allow_ips="127.0.0.1,::1", ...) on purpose: that is what a
# typical deployment behind a local gateway runs with.
import sys

bind = ["127.0.0.1:0"]  # the OS picks a free port
workers = 1
worker_class = "sync"
accesslog = None  # no access log at all (never on stdout)
errorlog = "-"  # stderr
control_socket_disable = True  # no $HOME/.gunicorn/gunicorn.ctl shared by parallel runs


def post_worker_init(worker):
    # Printed by the first worker once the app is loaded and the listening
    # socket is open, so the port already accepts connections. A worker that
    # gunicorn respawns later (age > 1) must not print a second line.
    if worker.age == 1:
        port = worker.sockets[0].getsockname()[1]
        sys.stdout.write("LISTENING %d\n" % port)
        sys.stdout.flush()
