#!/bin/bash
# vitscale under OpenMPI: 8 processes over the hosts of a hostfile.
#   bash examples/launch/mpirun.sh node01
# mpirun sets OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK; --host names the node of rank 0.
MASTER=${1:?usage: mpirun.sh MASTER_HOST}
export DATA=${DATA:-$HOME/data/cifar10}
mpirun -np 8 --hostfile hosts -x DATA -x PATH -x PYTHONPATH \
  vitscale train configs/cifar10/vit_lite_7_4.py --data "$DATA" --host "$MASTER" --port 29500 --run-dir runs/vit_lite_mpi
