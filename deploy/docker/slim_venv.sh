#!/bin/sh
# Shrink the virtualenv a builder stage made to what the served process loads, then prove
# that it still imports: slim_venv.sh MODULE... (the modules the service imports at start).
set -eu
site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

# Test suites shipped inside wheels (pandas 46 MB, scipy 32 MB, numpy 17 MB): never run here.
find "$site" -depth -type d -name tests -prune -exec rm -rf {} +

# scipy: catboost and lightgbm import scipy.sparse when loaded (isinstance checks on their
# input) and nothing else of scipy to score dense arrays, so only scipy.sparse and its own
# imports (scipy._lib) stay. scipy.libs (OpenBLAS, gfortran) serves linalg and sparse.linalg.
if [ -d "$site/scipy" ]; then
    for sub in "$site"/scipy/*/; do
        case "$(basename "$sub")" in _lib | sparse) ;; *) rm -rf "$sub" ;; esac
    done
    rm -rf "$site/scipy/sparse/linalg" "$site/scipy/sparse/csgraph" "$site/scipy.libs"
fi

# pip and setuptools: nothing is installed into a running container.
python -m pip uninstall --yes --quiet pip setuptools

# From / so that the installed packages are imported, not a source tree in the cwd.
cd /
python -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' "$@"
echo "slim_venv: $(du -sh "$site" | cut -f1) in $site; imports OK: $*"
