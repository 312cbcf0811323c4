"""Amalthea: a multi-user notebook hub.

Layers, one package each: ``hub`` (login, database, REST API, pages, spawn lifecycle),
``auth`` (authenticators), ``spawners`` (where servers run), ``proxy`` (the public port),
``singleuser`` (the per-user jupyter_server extension), ``services`` (helpers for hub services).
"""

__version__ = "0.1.0"

#: The JupyterHub version whose wire protocol we speak; sent as ``X-JupyterHub-Version``.
JUPYTERHUB_COMPAT_VERSION = "6.1.1"

__all__ = ["JUPYTERHUB_COMPAT_VERSION", "__version__"]
