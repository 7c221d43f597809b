#!/bin/bash
# A FireWorks worker as a PBS job (see slurm_fireworks_worker.sh): `mpiexec -n N rlaunch
# rapidfire`, N independent workers in their own folders, pulling Fireworks from the LaunchPad.
#
#   qsub hpc/pbs_fireworks_worker.sh
#   qsub -v FWORKER=$HOME/.fireworks/my_fworker_neb.yaml hpc/pbs_fireworks_worker.sh
#
#PBS -N ionscreen-fw
#PBS -l select=1:ncpus=8:mpiprocs=8
##PBS -l nodes=1:ppn=8          (TORQUE)
#PBS -l walltime=04:00:00
#PBS -j oe
##PBS -q CHANGE_ME
##PBS -A CHANGE_ME
set -euo pipefail

# module load ...; source "$HOME/venvs/ionscreen/bin/activate"
if [ -n "${IONSCREEN_SETUP:-}" ]; then
    # shellcheck disable=SC1090
    source "$IONSCREEN_SETUP"
fi
cd "${PBS_O_WORKDIR:-$PWD}"

FW_CONFIG_DIR="${FW_CONFIG_DIR:-$HOME/.fireworks}"
LAUNCHPAD="${LAUNCHPAD:-$FW_CONFIG_DIR/my_launchpad.yaml}"
FWORKER="${FWORKER:-$FW_CONFIG_DIR/my_fworker.yaml}"
if [ -n "${PBS_NP:-}" ]; then
    NTASKS="$PBS_NP"
elif [ -n "${PBS_NODEFILE:-}" ] && [ -r "${PBS_NODEFILE}" ]; then
    NTASKS="$(wc -l < "$PBS_NODEFILE")"
else
    NTASKS="${NTASKS:-1}"
fi
WORKDIR="${FW_WORKDIR:-$PWD/fw_launches}"
RLAUNCH=(rlaunch -l "$LAUNCHPAD" -w "$FWORKER" rapidfire)
# stop taking new Fireworks after FW_TIMEOUT seconds (set it ~10 min below the wall time)
if [ -n "${FW_TIMEOUT:-}" ]; then RLAUNCH+=(--timeout "$FW_TIMEOUT"); fi
if [ -n "${FW_NLAUNCHES:-}" ]; then RLAUNCH+=(--nlaunches "$FW_NLAUNCHES"); fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p "$WORKDIR"
cd "$WORKDIR"
if [ "$NTASKS" -le 1 ]; then
    exec "${RLAUNCH[@]}"
fi
# shellcheck disable=SC2016
PER_RANK='d="rank_${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-${PALS_RANKID:-0}}}"; mkdir -p "$d"; cd "$d"; exec "$@"'
exec "${MPI_LAUNCHER:-mpiexec}" -n "$NTASKS" bash -c "$PER_RANK" rank "${RLAUNCH[@]}"
