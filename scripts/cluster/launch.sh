#!/usr/bin/env bash
# fairseq-train of a recipe (python -m fairseq_ot.recipes RECIPE CRITERION) on this
# node's processes: alone on one machine, or once per node under srun (train.sbatch).
#
# Usage: scripts/cluster/launch.sh [options] RECIPE CRITERION DATA RUN_DIR [fairseq-train flags...]
#
# RUN_DIR receives train.log (fairseq's JSON log) and checkpoints/; a run whose
# checkpoints/checkpoint_last.pt exists resumes from it (fairseq does this by itself).
# Flags after RUN_DIR come last and override the recipe's (e.g. --max-update 1000).
#
# Options (each also read from the environment variable named in brackets):
#   --cpu                    CPU processes with gloo [CPU=1]; default: GPUs with nccl
#   --nproc-per-node N       processes on this node [NPROC_PER_NODE]; default: the
#                            visible GPUs, or 1 with --cpu
#   --nnodes N               nodes taking part [NNODES]; default 1
#   --node-rank R            this node's rank; default $SLURM_NODEID, else 0
#   --master-addr HOST       host of the rendezvous, node rank 0 [MASTER_ADDR]; without
#                            it one node uses torchrun --standalone (a free local port)
#   --master-port PORT       port of the rendezvous [MASTER_PORT]; default 29500
#   --save-interval-updates N   a checkpoint every N updates, so that a pre-empted
#                            run loses little [SAVE_INTERVAL_UPDATES]; default 500
#   --launcher slurm         no torchrun: this process is one srun task of many (one
#                            per GPU) and fairseq reads its rank, the world size and
#                            the master from Slurm's variables; --master-port is then
#                            fairseq's --distributed-port. GPUs only.
set -euo pipefail

die() {
    echo "launch.sh: error: $*" >&2
    exit 2
}

cpu=${CPU:-0}
nproc=${NPROC_PER_NODE:-}
nnodes=${NNODES:-1}
node_rank=${SLURM_NODEID:-0}
master_addr=${MASTER_ADDR:-}
master_port=${MASTER_PORT:-29500}
save_interval=${SAVE_INTERVAL_UPDATES:-500}
launcher=torchrun
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --cpu) cpu=1; shift ;;
        --nproc-per-node) nproc=$2; shift 2 ;;
        --nnodes) nnodes=$2; shift 2 ;;
        --node-rank) node_rank=$2; shift 2 ;;
        --master-addr) master_addr=$2; shift 2 ;;
        --master-port) master_port=$2; shift 2 ;;
        --save-interval-updates) save_interval=$2; shift 2 ;;
        --launcher) launcher=$2; shift 2 ;;
        *) die "unknown option $1 (options come before RECIPE)" ;;
    esac
done
[[ $# -ge 4 ]] || die "usage: launch.sh [options] RECIPE CRITERION DATA RUN_DIR [fairseq-train flags...]"
recipe=$1 criterion=$2 data=$3 run_dir=$4
shift 4

# DATA may list shards separated by ':' as fairseq allows; the first must exist.
[[ -d ${data%%:*} ]] || die "data directory ${data%%:*} does not exist"
compgen -G "${data%%:*}/dict.*.txt" > /dev/null \
    || die "${data%%:*} has no dict.*.txt: binarize the data with fairseq-preprocess first"
case $launcher in torchrun | slurm) ;; *) die "--launcher is torchrun or slurm, not $launcher" ;; esac
if [[ $launcher == slurm ]]; then
    [[ $cpu == 0 ]] || die "--launcher slurm needs GPUs (fairseq sets the CUDA device from SLURM_LOCALID); use torchrun with --cpu"
    [[ -n ${SLURM_NTASKS:-} ]] || die "--launcher slurm runs as one of the tasks of srun"
fi

# fairseq_ot/recipes/__init__.py run as a file: `python -m fairseq_ot.recipes` would first
# import fairseq through the package (seconds on every launch).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
quoted_flags=$(python -I "$repo/fairseq_ot/recipes/__init__.py" "$recipe" "$criterion") || exit 2
eval "recipe_flags=($quoted_flags)"

if [[ -z $nproc ]]; then
    if [[ $cpu == 1 ]]; then
        nproc=1
    else
        nproc=$(python -c "import torch; print(torch.cuda.device_count())")
    fi
fi
[[ $nproc -ge 1 ]] || die "no GPU visible: pass --cpu to train on CPU processes"

mkdir -p "$run_dir/checkpoints"
# By the first node (torchrun) or task (slurm) alone: no process loads the checkpoint
# before the rendezvous, which waits for this one.
first_rank=$node_rank
[[ $launcher == torchrun ]] || first_rank=${SLURM_PROCID:-0}
if [[ $first_rank == 0 ]]; then
    python -I "$repo/scripts/cluster/restore_last_checkpoint.py" "$run_dir/checkpoints"
fi
# Rank 0 reads checkpoint_last.pt and fairseq sends it to the other ranks (the
# plugin lets that broadcast through torch >= 2.6's weights-only default); every
# rank still checks that the file exists, so RUN_DIR must be on a filesystem all
# nodes share.
run_flags=(
    --save-dir "$run_dir/checkpoints" --log-format json --log-file "$run_dir/train.log"
    --save-interval-updates "$save_interval" --keep-interval-updates 1 --no-epoch-checkpoints
)

if [[ $launcher == slurm ]]; then
    exec fairseq-ot-train "$data" "${recipe_flags[@]}" "${run_flags[@]}" \
        --distributed-world-size "$SLURM_NTASKS" --distributed-port "$master_port" \
        --distributed-backend nccl "$@"
fi

if [[ $cpu == 1 ]]; then
    # fairseq's own torchrun detection divides by the number of GPUs: on CPU the
    # rank comes from torchrun's environment through env:// instead.
    device_flags=(
        --cpu --distributed-backend gloo --ddp-backend legacy_ddp
        --distributed-init-method env:// --distributed-no-spawn --distributed-rank -1 --device-id 0
    )
else
    # fairseq reads RANK, WORLD_SIZE and the master from torchrun's environment
    # and takes the GPU RANK % (GPUs per node).
    device_flags=(--distributed-backend nccl)
fi

if [[ -z $master_addr && $nnodes == 1 ]]; then
    rendezvous=(--standalone)
else
    [[ -n $master_addr ]] || die "--nnodes $nnodes needs --master-addr (the host of node rank 0)"
    rendezvous=(--nnodes "$nnodes" --node-rank "$node_rank" --master-addr "$master_addr" --master-port "$master_port")
fi

exec torchrun "${rendezvous[@]}" --nproc-per-node "$nproc" --no-python \
    fairseq-ot-train "$data" "${recipe_flags[@]}" "${run_flags[@]}" "${device_flags[@]}" \
    --distributed-world-size $((nnodes * nproc)) "$@"
