#!/bin/sh
# LSTM probe (docs/scaling.md "Next candidate: an LSTM text workload (probe)"): cost of one
# optimiser step in Node (cpu backend, this tree's Trainer) of text_mlp (embedding 8, dense 256)
# against text_lstm (embedding 16, LSTM 64), batch 32 and 64, one after the other on this
# machine. Output: bench/scaling_results/lstm_probe_step_2026-12-02.txt
cd "$(dirname "$0")/../.." || exit 1
export OMP_NUM_THREADS=1
echo "# text_mlp"
nice -n 10 node bench/step_time.mjs --model mlp --hidden 256 --batches 32,64 --rounds ${MLP_ROUNDS:-20} --warmup 2
echo "# text_lstm"
nice -n 10 node bench/step_time.mjs --model lstm --hidden 64 --batches 32,64 --rounds ${LSTM_ROUNDS:-3} --warmup 1 2>&1 | grep -v Orthogonal
