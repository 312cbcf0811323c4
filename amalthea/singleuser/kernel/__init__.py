"""A faster IPython kernel for single-user servers: ipykernel minus per-message thread hops.

``python -m amalthea.singleuser.kernel -f {connection_file}`` runs :class:`FastKernelApp`
(app.py), an ``IPKernelApp`` whose IOPub messages are sent by the thread that makes them
(iopub.py) when order and signal handlers allow (sigint.py). ``amalthea-singleuser`` launches
it in place of ``ipykernel_launcher`` for kernel specs that run the server's own Python
(../kernelspec.py). Importing this package does not import ipykernel.
"""

__all__: list[str] = []
