#!/usr/bin/env bash
# Checks the delivery files without GitLab or a cluster:
#   1. every pipeline file against GitLab's schema (check-jsonschema);
#   2. gitlab-ci-local lists the parent and every child pipeline, for merge requests and for
#      the default branch, and runs the children's test jobs named in CHECK_DELIVERY_JOBS
#      (default: registry-client's; "all" runs every child's test job, which trains models)
#      with the shell executor, in a throw-away clone whose origin is a bare repo under /tmp;
#   3. each Kubernetes overlay renders with `kubectl kustomize` and passes
#      `kubernetes-validate --strict`.
# Tools go into target/delivery (a venv and an npm prefix); rsync comes from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/target/delivery
k8s_version=${CHECK_DELIVERY_K8S_VERSION:-1.32.0}
jobs=${CHECK_DELIVERY_JOBS:-registry-client:test-registry-client}

step() { printf '\n==> %s\n' "$*"; }

install_tools() {
    if [[ ! -x $tools/venv/bin/check-jsonschema || ! -x $tools/venv/bin/kubernetes-validate ]]; then
        python3 -m venv "$tools/venv"
        "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
            check-jsonschema kubernetes-validate
    fi
    if [[ ! -x $tools/npm/node_modules/.bin/gitlab-ci-local ]]; then
        npm install --silent --prefix "$tools/npm" gitlab-ci-local@4.73.0
    fi
    if ! command -v rsync >/dev/null; then
        apt-get install -y -qq rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
    fi
}

pipeline_files() {
    echo .gitlab-ci.yml
    git ls-files --cached --others --exclude-standard -- '*/.gitlab-ci.yml'
}

check_schema() {
    local file
    for file in $(pipeline_files); do
        "$tools/venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci \
            --data-transform gitlab-ci "$file"
    done
}

# A clone of the working tree (committed, changed and new files) with a bare origin.
make_clone() {
    local tmp=$1
    git clone --quiet --no-local "$root" "$tmp/repo"
    git diff HEAD --binary | git -C "$tmp/repo" apply --allow-empty
    git ls-files --others --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$tmp/repo/"
    git -C "$tmp/repo" -c user.name=check -c user.email=check@localhost commit --quiet -am check \
        --allow-empty
    git -C "$tmp/repo" add -A && git -C "$tmp/repo" -c user.name=check \
        -c user.email=check@localhost commit --quiet -m untracked --allow-empty
    git init --quiet --bare "$tmp/origin.git"
    git -C "$tmp/repo" remote set-url origin "$tmp/origin.git"
    git -C "$tmp/repo" push --quiet origin HEAD:refs/heads/main
    git -C "$tmp/origin.git" symbolic-ref HEAD refs/heads/main
    git -C "$tmp/repo" fetch --quiet origin
    git -C "$tmp/repo" remote set-head origin main >/dev/null
    # Only parsed by gitlab-ci-local for the CI_PROJECT_* variables, never contacted.
    git -C "$tmp/repo" remote add gcl-origin https://gitlab.example.com/digit-lab/digit-lab.git
}

gcl() {
    (cd "$clone" && "$tools/npm/node_modules/.bin/gitlab-ci-local" "$@")
}

check_pipelines() {
    local file source
    local -a listed
    # The parent on a branch whose only change is $1: the children it lists must be $2.
    local -a cases=("README.md:" "trainer/config.toml:ml-ui trainer"
        "registry-client/src/lib.rs:ml-ui registry-client trainer" "k8s/base/service.yaml:ml-ui")
    local case path expected started
    for case in "${cases[@]}"; do
        path=${case%%:*} expected=${case#*:}
        git -C "$clone" checkout --quiet -B "check-${path//\//-}" main
        echo "# changed by check-delivery" >>"$clone/$path"
        git -C "$clone" -c user.name=check -c user.email=check@localhost commit --quiet -am change
        started=$(GCL_IGNORE_PREDEFINED_VARS=CI_PIPELINE_SOURCE gcl --list-csv \
            --variable CI_PIPELINE_SOURCE=merge_request_event | tail -n +2 | cut -d ';' -f 1 \
            | sort | xargs)
        echo "-- parent, merge request changing $path: children [$started]"
        [[ $started == "$expected" ]] || { echo "expected [$expected]" >&2; return 1; }
    done
    git -C "$clone" checkout --quiet main
    for file in $(pipeline_files | grep /); do
        for source in merge_request_event push; do
            echo "-- $file ($source)"
            mapfile -t listed < <(gcl --file "$file" --list --variable PARENT_PIPELINE_SOURCE=$source)
            printf '%s\n' "${listed[@]}"
            (( ${#listed[@]} > 1 )) || { echo "no jobs listed for $file" >&2; return 1; }
        done
    done
}

run_test_jobs() {
    local entry child job
    local -a entries
    if [[ $jobs == all ]]; then
        entries=(registry-client:test-registry-client trainer:test-trainer ml-ui:test-ml-ui)
    else
        read -r -a entries <<<"$jobs"
    fi
    for entry in "${entries[@]}"; do
        child=${entry%%:*} job=${entry#*:}
        echo "-- $child: $job"
        gcl --file "$child/.gitlab-ci.yml" --force-shell-executor --no-artifacts-to-source \
            --variable PARENT_PIPELINE_SOURCE=merge_request_event \
            --variable CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
            --variable CARGO_TARGET_DIR="$root/target" "$job"
    done
}

check_k8s() {
    local overlay rendered
    for overlay in k8s/overlays/*/; do
        rendered=$clone/$(basename "$overlay").yaml
        kubectl kustomize "$overlay" >"$rendered"
        "$tools/venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$rendered"
        echo "$overlay: $(grep -c '^kind:' "$rendered") objects valid"
    done
}

started=$(date +%s)
step "tools"
install_tools
step "pipeline files against GitLab's schema"
check_schema
tmp=$(mktemp -d /tmp/check-delivery.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
clone=$tmp/repo
make_clone "$tmp"
step "gitlab-ci-local: parent and child pipelines"
check_pipelines
step "gitlab-ci-local: test jobs ($jobs)"
[[ -z $jobs || $jobs == none ]] || run_test_jobs
step "Kubernetes overlays"
check_k8s
step "delivery checks passed in $(( $(date +%s) - started )) s"
