#!/bin/bash
# ionscreen screen with the local engine over MPI ranks, as a SLURM batch job.
#
#   sbatch hpc/slurm_local_mpi.sh                       # defaults below
#   IONSCREEN_IONS="Mg Ca" IONSCREEN_OUT=$SCRATCH/run1 sbatch --export=ALL hpc/slurm_local_mpi.sh
#
# Rank 0 owns the result store (OUT/ionscreen.sqlite) and hands out jobs; the other ranks
# compute, so N tasks give N-1 computing ranks. Every finished job is committed at once: when
# the wall time kills the job, submit the same script again and it resumes (see hpc/README.md).
# Keep everything on ONE node unless OUT is on a file system that SQLite WAL accepts.
#
#SBATCH --job-name=ionscreen
#SBATCH --nodes=1
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=ionscreen-%j.out
##SBATCH --partition=CHANGE_ME
##SBATCH --account=CHANGE_ME
set -euo pipefail

# --- site set-up: load the MPI that mpi4py was built against, activate the environment
# module load openmpi            # or: module load cray-mpich / intel-mpi ...
# source "$HOME/venvs/ionscreen/bin/activate"
if [ -n "${IONSCREEN_SETUP:-}" ]; then
    # shellcheck disable=SC1090
    source "$IONSCREEN_SETUP"
fi

# --- what to screen (override any of these with environment variables)
NTASKS="${SLURM_NTASKS:-${NTASKS:-2}}"
IONSCREEN_HOSTS="${IONSCREEN_HOSTS:-builtin}"
IONSCREEN_IONS="${IONSCREEN_IONS:-Mg Ca Zn Al NH4}"
IONSCREEN_OUT="${IONSCREEN_OUT:-${SLURM_SUBMIT_DIR:-$PWD}/run}"
IONSCREEN_NEB_TOP="${IONSCREEN_NEB_TOP:-3}"
IONSCREEN_EXTRA="${IONSCREEN_EXTRA:-}"          # e.g. "--substitute default --cps"
# srun (the SLURM way) inside an allocation; mpiexec elsewhere or if your site prefers it
if [ -z "${MPI_LAUNCHER:-}" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null 2>&1; then
        MPI_LAUNCHER=srun
    else
        MPI_LAUNCHER=mpiexec
    fi
fi

# one thread per rank: the ranks share the cores
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# shellcheck disable=SC2206
ARGS=(screen --hosts "$IONSCREEN_HOSTS" --ions $IONSCREEN_IONS --out "$IONSCREEN_OUT"
      --neb-top "$IONSCREEN_NEB_TOP" $IONSCREEN_EXTRA)
echo "ionscreen: $NTASKS ranks via $MPI_LAUNCHER on $(hostname), store $IONSCREEN_OUT/ionscreen.sqlite"
case "$MPI_LAUNCHER" in
    srun) exec srun --ntasks="$NTASKS" ionscreen "${ARGS[@]}" ;;
    *)    exec "$MPI_LAUNCHER" -n "$NTASKS" ionscreen "${ARGS[@]}" ;;
esac
