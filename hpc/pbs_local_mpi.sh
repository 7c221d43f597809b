#!/bin/bash
# ionscreen screen with the local engine over MPI ranks, as a PBS Pro / TORQUE batch job.
#
#   qsub hpc/pbs_local_mpi.sh
#   qsub -v IONSCREEN_IONS="Mg Ca",IONSCREEN_OUT=/scratch/me/run1 hpc/pbs_local_mpi.sh
#
# Rank 0 owns the result store (OUT/ionscreen.sqlite); N ranks give N-1 computing ranks. A job
# killed at its wall time resumes when the same script is submitted again (hpc/README.md).
#
#PBS -N ionscreen
#PBS -l select=1:ncpus=8:mpiprocs=8
##PBS -l nodes=1:ppn=8          (TORQUE: use this line instead of the select line)
#PBS -l walltime=04:00:00
#PBS -j oe
##PBS -q CHANGE_ME
##PBS -A CHANGE_ME
set -euo pipefail

# --- site set-up
# module load openmpi
# source "$HOME/venvs/ionscreen/bin/activate"
if [ -n "${IONSCREEN_SETUP:-}" ]; then
    # shellcheck disable=SC1090
    source "$IONSCREEN_SETUP"
fi
cd "${PBS_O_WORKDIR:-$PWD}"

# --- ranks: PBS_NP (PBS Pro / TORQUE), else the node file, else NTASKS (default 2)
if [ -n "${PBS_NP:-}" ]; then
    NTASKS="$PBS_NP"
elif [ -n "${PBS_NODEFILE:-}" ] && [ -r "${PBS_NODEFILE}" ]; then
    NTASKS="$(wc -l < "$PBS_NODEFILE")"
else
    NTASKS="${NTASKS:-2}"
fi
IONSCREEN_HOSTS="${IONSCREEN_HOSTS:-builtin}"
IONSCREEN_IONS="${IONSCREEN_IONS:-Mg Ca Zn Al NH4}"
IONSCREEN_OUT="${IONSCREEN_OUT:-$PWD/run}"
IONSCREEN_NEB_TOP="${IONSCREEN_NEB_TOP:-3}"
IONSCREEN_EXTRA="${IONSCREEN_EXTRA:-}"
MPI_LAUNCHER="${MPI_LAUNCHER:-mpiexec}"

export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# shellcheck disable=SC2206
ARGS=(screen --hosts "$IONSCREEN_HOSTS" --ions $IONSCREEN_IONS --out "$IONSCREEN_OUT"
      --neb-top "$IONSCREEN_NEB_TOP" $IONSCREEN_EXTRA)
echo "ionscreen: $NTASKS ranks via $MPI_LAUNCHER on $(hostname), store $IONSCREEN_OUT/ionscreen.sqlite"
exec "$MPI_LAUNCHER" -n "$NTASKS" ionscreen "${ARGS[@]}"
