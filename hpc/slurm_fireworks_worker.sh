#!/bin/bash
# A FireWorks worker as a SLURM job: runs the Fireworks on the LaunchPad (ionscreen submit
# put them there) until none is ready or the time is nearly up.
#
#   sbatch hpc/slurm_fireworks_worker.sh                  # N = --ntasks independent workers
#   FW_CATEGORY_FILE=~/fw/my_fworker_neb.yaml sbatch hpc/slurm_fireworks_worker.sh
#
# With N tasks it starts `srun -n N rlaunch rapidfire` (or `mpiexec -n N ...` with
# MPI_LAUNCHER=mpiexec): N independent rlaunch processes, each in its own folder, each pulling
# Fireworks from the LaunchPad. The ionscreen steps are serial, so this is how a node's cores
# are used. To let FireWorks submit these jobs itself, use qlaunch with my_qadapter_slurm.yaml.
#
#SBATCH --job-name=ionscreen-fw
#SBATCH --nodes=1
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --output=ionscreen-fw-%j.out
##SBATCH --partition=CHANGE_ME
##SBATCH --account=CHANGE_ME
set -euo pipefail

# module load ...; source "$HOME/venvs/ionscreen/bin/activate"
if [ -n "${IONSCREEN_SETUP:-}" ]; then
    # shellcheck disable=SC1090
    source "$IONSCREEN_SETUP"
fi

FW_CONFIG_DIR="${FW_CONFIG_DIR:-$HOME/.fireworks}"
LAUNCHPAD="${LAUNCHPAD:-$FW_CONFIG_DIR/my_launchpad.yaml}"
FWORKER="${FWORKER:-$FW_CONFIG_DIR/my_fworker.yaml}"
NTASKS="${SLURM_NTASKS:-${NTASKS:-1}}"
WORKDIR="${FW_WORKDIR:-${SLURM_SUBMIT_DIR:-$PWD}/fw_launches}"
# stop taking new Fireworks this many seconds after the start (set below the wall time, so a
# running Firework can finish); default: 10 min less than the job's time limit, else none
if [ -z "${FW_TIMEOUT:-}" ] && [ -n "${SLURM_JOB_END_TIME:-}" ]; then
    FW_TIMEOUT=$(( SLURM_JOB_END_TIME - $(date +%s) - 600 ))
fi
RLAUNCH=(rlaunch -l "$LAUNCHPAD" -w "$FWORKER" rapidfire)
if [ -n "${FW_TIMEOUT:-}" ]; then RLAUNCH+=(--timeout "$FW_TIMEOUT"); fi
if [ -n "${FW_NLAUNCHES:-}" ]; then RLAUNCH+=(--nlaunches "$FW_NLAUNCHES"); fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"
mkdir -p "$WORKDIR"
cd "$WORKDIR"
if [ "$NTASKS" -le 1 ]; then
    exec "${RLAUNCH[@]}"
fi
# each rank in its own launch folder (rank from srun, MPICH/Hydra or Open MPI)
# shellcheck disable=SC2016
PER_RANK='d="rank_${SLURM_PROCID:-${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-0}}}"; mkdir -p "$d"; cd "$d"; exec "$@"'
if [ "${MPI_LAUNCHER:-srun}" = srun ] && command -v srun >/dev/null 2>&1; then
    exec srun --ntasks="$NTASKS" bash -c "$PER_RANK" rank "${RLAUNCH[@]}"
else
    exec "${MPI_LAUNCHER:-mpiexec}" -n "$NTASKS" bash -c "$PER_RANK" rank "${RLAUNCH[@]}"
fi
