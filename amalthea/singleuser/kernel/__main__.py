"""``python -m amalthea.singleuser.kernel -f {connection_file}``: start the fast kernel."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # As ipykernel_launcher: take the working directory off sys.path while the kernel imports,
    # so a user's file named like a library cannot shadow it; IPython puts it back for the
    # user's code (InteractiveShellApp.init_path).
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]

    from amalthea.singleuser.kernel.app import main

    main()
