#!/usr/bin/env bash
# Draws the book's pictures (book/src/images) again from the examples, each run with its default
# arguments, so that what the book shows is what the code draws. Run it after changing an example
# or what it trains, and commit the pictures with the change. About 4 minutes on 2 cores once the
# examples are built (one at a time: they use both cores).
#
# `book/pictures.sh` draws them all; `book/pictures.sh rbm dbn` only those of the runs named.
set -euo pipefail
cd "$(dirname "$0")/.."

images=book/src/images
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run NAME EXAMPLE [ARGS...] -- FILE:PICTURE...: run EXAMPLE with ARGS into its own folder, then
# copy each FILE it wrote to book/src/images/PICTURE.
run() {
    local name=$1 example=$2
    shift 2
    local args=()
    while [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    shift
    if [ ${#chosen[@]} -gt 0 ] && [[ ! " ${chosen[*]} " =~ " $name " ]]; then
        return
    fi
    echo "== $name: cargo run --release --example $example -- ${args[*]}"
    ./target/release/examples/"$example" "${args[@]}" --out "$out/$name"
    for pair in "$@"; do
        cp "$out/$name/${pair%%:*}" "$images/${pair#*:}"
        made+=("${pair#*:}")
    done
}

chosen=("$@")
made=()
cargo build --release --example rbm --example autoencoders --example dbn \
    --example sequence_digits --example convnet --example dbn_generate --example conv_rbm \
    --example sparse_coding --example rbm_likelihood --example dbm

run rbm_cd1 rbm -- rbm_curve.png:rbm_cd1_curve.png rbm_filters.png:rbm_cd1_filters.png
run rbm_pcd rbm --pcd -- rbm_samples.png:rbm_pcd_samples.png
run autoencoders autoencoders -- \
    ae_denoising_reconstructions.png:ae_denoising_reconstructions.png \
    ae_plain_reconstructions.png:ae_plain_reconstructions.png \
    ae_sparse_filters.png:ae_sparse_filters.png
run dbn dbn -- dbn_samples.png:dbn_samples.png dbn_curve.png:dbn_curve.png
run dbn_generate dbn_generate -- \
    dbn_generated.png:dbn_generated.png dbn_up_down_curve.png:dbn_up_down_curve.png
run sequence_digits sequence_digits -- sequence_curve.png:sequence_curve.png
run convnet convnet -- convnet_filters.png:convnet_filters.png convnet_curve.png:convnet_curve.png
run conv_rbm conv_rbm -- conv_rbm_filters.png:conv_rbm_filters.png conv_rbm_curve.png:conv_rbm_curve.png
run rbm_centered rbm_likelihood --centered -- \
    rbm_likelihood_centered_curve.png:rbm_likelihood_centered_curve.png
run sparse_coding sparse_coding -- sc_dictionary.png:sc_dictionary.png sc_objective.png:sc_objective.png
run dbm dbm -- dbm_samples.png:dbm_samples.png dbm_curve.png:dbm_curve.png

# Every picture a chapter shows is drawn here, and nothing else is kept: a picture the book
# names but no run draws is an error, one no chapter names is removed.
shown=$(grep -oh 'images/[A-Za-z0-9_.-]*' book/src/*.md | sed 's|images/||' | sort -u)
if [ ${#chosen[@]} -eq 0 ]; then
    for picture in $shown; do
        if [[ ! " ${made[*]} " =~ " $picture " ]]; then
            echo "book/pictures.sh: the book shows images/$picture, which no run here draws" >&2
            exit 1
        fi
    done
fi
for file in "$images"/*; do
    if ! grep -qx "$(basename "$file")" <<<"$shown"; then
        echo "removing $file: no chapter shows it"
        rm "$file"
    fi
done
echo "drew ${made[*]}"
