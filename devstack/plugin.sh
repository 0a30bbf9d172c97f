#!/bin/bash
# devstack/plugin.sh: the DevStack plugin of nova-migration-guard.
#
#     enable_plugin nova-migration-guard <repository URL> [branch]
#
# DevStack sources this file at each phase, with the phase as arguments:
#
#   stack install      install the package into Nova's virtualenv and apply
#                      the Nova patch set (all or nothing; skipped when
#                      already applied)
#   stack post-config  write the guards' lines into Nova's config files;
#                      stack.sh runs this phase before it starts Nova, so
#                      every service starts with them
#   stack extra        restart the node's Nova services, only with
#                      NOVA_MIGRATION_GUARD_RESTART_SERVICES=True
#   unstack            remove the lines (stack.sh writes them again)
#   clean              remove the lines, revert the patch set, uninstall
#
# Every step is idempotent: running a phase twice leaves the same files.
# The settings are in devstack/settings; see doc/source/devstack.rst.

# Save trace setting
_NMG_XTRACE=$(set +o | grep xtrace)
set -o xtrace

# The guards of this release, when the installed package cannot be asked.
_NMG_KNOWN_GUARDS="anti_affinity migration_outcome host_identity convergence"
# Nova's defaults of the [filter_scheduler] options the plugin extends.
_NMG_DEFAULT_AVAILABLE_FILTERS="nova.scheduler.filters.all_filters"
_NMG_DEFAULT_ENABLED_FILTERS="ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter"
_NMG_DEFAULT_WEIGHT_CLASSES="nova.scheduler.weights.all_weighers"
_NMG_STOCK_LIBVIRT_DRIVER="libvirt.LibvirtDriver"
# Sections that only the plugin writes.
_NMG_SECTIONS="migration_guard migration_guard_coordination migration_guard_anti_affinity"


# Helpers
# -------

function _nmg_cmd {
    echo "$NOVA_MIGRATION_GUARD_VENV/bin/nova-migration-guard"
}

# The guard names the installed package knows.
function _nmg_known_guards {
    local names
    names=$("$NOVA_MIGRATION_GUARD_VENV/bin/python" -c 'from nova_migration_guard.conf import guard; print(" ".join(guard.GUARD_NAMES))' 2>/dev/null) || names=""
    echo "${names:-$_NMG_KNOWN_GUARDS}"
}

# The guards of NOVA_MIGRATION_GUARD_GUARDS, comma-separated, without
# blanks or repeats; dies on a name the package does not know.
function _nmg_guards {
    local item known out=""
    known=$(_nmg_known_guards)
    for item in ${NOVA_MIGRATION_GUARD_GUARDS//,/ }; do
        if [[ " $known " != *" $item "* ]]; then
            die $LINENO "nova-migration-guard: unknown guard '$item' in NOVA_MIGRATION_GUARD_GUARDS (known: ${known// /, })"
        fi
        if [[ ",$out," != *",$item,"* ]]; then
            out=${out:+$out,}$item
        fi
    done
    echo "$out"
}

# _nmg_has_guard GUARDS NAME: is NAME in the comma-separated GUARDS?
function _nmg_has_guard {
    [[ ",$1," == *",$2,"* ]]
}

# _nmg_csv_add LIST ITEM: LIST (comma-separated) with ITEM at its end,
# unless it is already there.
function _nmg_csv_add {
    local list=$1 item=$2
    if [[ ",${list// /}," == *",$item,"* ]]; then
        echo "$list"
    else
        echo "${list:+$list,}$item"
    fi
}

# _nmg_csv_remove LIST ITEM: LIST (comma-separated) without ITEM.
function _nmg_csv_remove {
    local list=$1 item=$2 part out=""
    for part in ${list//,/ }; do
        if [[ $part != "$item" ]]; then
            out=${out:+$out,}$part
        fi
    done
    echo "$out"
}

# The config files of this node's Nova services that exist: nova.conf, the
# nova-compute copy (DevStack makes it from nova.conf when it starts
# nova-compute) and the cell conductors' nova_cellN.conf.
function _nmg_nova_confs {
    local conf
    echo "$NOVA_CONF"
    if [[ -n "${NOVA_CPU_CONF:-}" && "$NOVA_CPU_CONF" != "$NOVA_CONF" && -f "$NOVA_CPU_CONF" ]]; then
        echo "$NOVA_CPU_CONF"
    fi
    for conf in "${NOVA_CONF_DIR:-$(dirname "$NOVA_CONF")}"/nova_cell[0-9]*.conf; do
        if [[ -f $conf ]]; then
            echo "$conf"
        fi
    done
}

# The files nova-compute reads its compute_driver from.
function _nmg_compute_confs {
    echo "$NOVA_CONF"
    if [[ -n "${NOVA_CPU_CONF:-}" && "$NOVA_CPU_CONF" != "$NOVA_CONF" && -f "$NOVA_CPU_CONF" ]]; then
        echo "$NOVA_CPU_CONF"
    fi
}

# [migration_guard_coordination] backend_url, or nothing.
function _nmg_backend_url {
    local host
    if [[ "$NOVA_MIGRATION_GUARD_BACKEND_URL" != auto ]]; then
        echo "$NOVA_MIGRATION_GUARD_BACKEND_URL"
        return
    fi
    host=${SERVICE_HOST:-127.0.0.1}
    # an IPv6 address goes in brackets
    if [[ $host == *:* && $host != \[* ]]; then
        host="[$host]"
    fi
    echo "etcd3+http://$host:${ETCD_PORT:-2379}"
}

# _nmg_drop_empty_section FILE SECTION: remove SECTION's header (and the
# blank line iniset put before it) when nothing is left in the section.
function _nmg_drop_empty_section {
    local file=$1 section=$2 body tmp
    if ! grep -q "^\[$section\]" "$file"; then
        return 0
    fi
    body=$(sed -ne "/^\[$section\]/,/^\[.*\]/ p" "$file" | \
           sed -e '1d' -e '/^\[.*\]/d' -e '/^[[:space:]]*$/d')
    if [[ -n $body ]]; then
        return 0
    fi
    tmp=$(mktemp "$file.XXXXXX")
    awk -v header="[$section]" '
        { line[NR] = $0 }
        END {
            for (i = 1; i <= NR; i++) {
                if (line[i] == header) {
                    drop[i] = 1
                    if (i > 1 && line[i - 1] ~ /^[ \t]*$/) { drop[i - 1] = 1 }
                }
            }
            for (i = 1; i <= NR; i++) { if (!drop[i]) { print line[i] } }
        }' "$file" > "$tmp"
    cat "$tmp" > "$file"
    rm -f "$tmp"
}

# _nmg_patch_args: fills _NMG_PATCH_ARGS with --nova-dir and --nova-version
# of the Nova that the virtualenv's Python imports.
function _nmg_patch_args {
    local python="$NOVA_MIGRATION_GUARD_VENV/bin/python"
    local nova_dir=$NOVA_MIGRATION_GUARD_NOVA_DIR
    local nova_version=$NOVA_MIGRATION_GUARD_NOVA_VERSION
    if [[ -z $nova_dir ]]; then
        # find_spec: where nova is, without importing it
        nova_dir=$("$python" -c 'import importlib.util, os; spec = importlib.util.find_spec("nova"); print(os.path.dirname(os.path.dirname(os.path.abspath(spec.origin))) if spec else "")') || nova_dir=""
    fi
    if [[ -z $nova_dir ]]; then
        die $LINENO "nova-migration-guard: Nova is not installed in $NOVA_MIGRATION_GUARD_VENV (set NOVA_MIGRATION_GUARD_NOVA_DIR)"
    fi
    if [[ -z $nova_version ]]; then
        nova_version=$("$python" -c 'import importlib.metadata as m; print(m.version("nova"))' 2>/dev/null) || nova_version=""
    fi
    _NMG_PATCH_ARGS=(--nova-dir "$nova_dir")
    if [[ -n $nova_version ]]; then
        _NMG_PATCH_ARGS+=(--nova-version "$nova_version")
    fi
}


# Install
# -------

# Install the package into Nova's virtualenv (editable, as DevStack installs
# the services from their checkouts), with its extra packages.
function install_nova_migration_guard {
    local pip="$NOVA_MIGRATION_GUARD_VENV/bin/pip"
    local constraints="${REQUIREMENTS_DIR:-${DEST:-/opt/stack}/requirements}/upper-constraints.txt"
    local -a args=()
    if [[ ! -x $pip ]]; then
        die $LINENO "nova-migration-guard: no pip in $NOVA_MIGRATION_GUARD_VENV (set NOVA_MIGRATION_GUARD_VENV to Nova's virtualenv)"
    fi
    if [[ -f $constraints ]]; then
        args=(-c "$constraints")
    fi
    echo_summary "Installing nova-migration-guard into $NOVA_MIGRATION_GUARD_VENV"
    "$pip" install "${args[@]}" -e "$NOVA_MIGRATION_GUARD_DIR"
    if [[ -n $NOVA_MIGRATION_GUARD_PIP_PACKAGES ]]; then
        # shellcheck disable=SC2086  # a list of package names
        "$pip" install "${args[@]}" $NOVA_MIGRATION_GUARD_PIP_PACKAGES
    fi
}

# Apply the Nova patch set, unless it is applied already.  The command
# changes all of Nova's files or none, and refuses (one line, non-zero exit)
# a Nova it has no series for or whose files were edited locally.
function apply_nova_migration_guard_patches {
    local cmd status rc=0
    cmd=$(_nmg_cmd)
    _nmg_patch_args
    echo_summary "Applying the nova-migration-guard patch set to ${_NMG_PATCH_ARGS[1]}"
    status=$("$cmd" patches status "${_NMG_PATCH_ARGS[@]}" 2>&1) || rc=$?
    echo "$status"
    if [[ $rc == 0 && "$(head -n 1 <<< "$status")" == *": applied" ]]; then
        echo "nova-migration-guard: the patch set is applied already"
        return 0
    fi
    if ! "$cmd" patches apply "${_NMG_PATCH_ARGS[@]}"; then
        die $LINENO "nova-migration-guard patches apply refused (see above); Nova was left as it was"
    fi
}

# Revert the patch set (the clean phase): best effort, never fatal.
function revert_nova_migration_guard_patches {
    local cmd status rc=0
    cmd=$(_nmg_cmd)
    if [[ ! -x $cmd ]]; then
        echo "nova-migration-guard: $cmd is missing, the patch set is left as it is"
        return 0
    fi
    _nmg_patch_args
    status=$("$cmd" patches status "${_NMG_PATCH_ARGS[@]}" 2>&1) || rc=$?
    echo "$status"
    if [[ $rc == 0 && "$(head -n 1 <<< "$status")" == *": not applied" ]]; then
        return 0
    fi
    if ! "$cmd" patches revert "${_NMG_PATCH_ARGS[@]}"; then
        echo "WARNING: nova-migration-guard patches revert refused (see above); reinstall Nova to restore it"
    fi
}

function uninstall_nova_migration_guard {
    local pip="$NOVA_MIGRATION_GUARD_VENV/bin/pip"
    if [[ -x $pip ]]; then
        "$pip" uninstall -y nova-migration-guard || true
    fi
}


# Configuration
# -------------

# _nmg_scheduler_classes FILE add|remove: our filter and weigher in
# [filter_scheduler] beside Nova's own, each once.  Removing them drops an
# option that is then left at Nova's default value.
function _nmg_scheduler_classes {
    local file=$1 action=$2
    local available enabled weighers value part
    available=$(iniget_multiline "$file" filter_scheduler available_filters)
    enabled=$(iniget "$file" filter_scheduler enabled_filters)
    weighers=$(iniget "$file" filter_scheduler weight_classes)
    if [[ $action == add ]]; then
        available=${available:-$_NMG_DEFAULT_AVAILABLE_FILTERS}
        if [[ " $available " != *" $NOVA_MIGRATION_GUARD_FILTER "* ]]; then
            # shellcheck disable=SC2086  # one value per word
            iniset_multiline "$file" filter_scheduler available_filters $available "$NOVA_MIGRATION_GUARD_FILTER"
        fi
        value=$(_nmg_csv_add "${enabled:-$_NMG_DEFAULT_ENABLED_FILTERS}" "${NOVA_MIGRATION_GUARD_FILTER##*.}")
        if [[ $value != "$enabled" ]]; then
            iniset "$file" filter_scheduler enabled_filters "$value"
        fi
        value=$(_nmg_csv_add "${weighers:-$_NMG_DEFAULT_WEIGHT_CLASSES}" "$NOVA_MIGRATION_GUARD_WEIGHER")
        if [[ $value != "$weighers" ]]; then
            iniset "$file" filter_scheduler weight_classes "$value"
        fi
        return 0
    fi
    if [[ " $available " == *" $NOVA_MIGRATION_GUARD_FILTER "* ]]; then
        value=""
        for part in $available; do
            if [[ $part != "$NOVA_MIGRATION_GUARD_FILTER" ]]; then
                value=${value:+$value }$part
            fi
        done
        if [[ -z $value || $value == "$_NMG_DEFAULT_AVAILABLE_FILTERS" ]]; then
            inidelete "$file" filter_scheduler available_filters
        else
            # shellcheck disable=SC2086
            iniset_multiline "$file" filter_scheduler available_filters $value
        fi
    fi
    if [[ -n $enabled ]]; then
        value=$(_nmg_csv_remove "$enabled" "${NOVA_MIGRATION_GUARD_FILTER##*.}")
        if [[ $value == "$_NMG_DEFAULT_ENABLED_FILTERS" && $enabled != "$value" ]]; then
            inidelete "$file" filter_scheduler enabled_filters
        elif [[ $value != "$enabled" ]]; then
            iniset "$file" filter_scheduler enabled_filters "$value"
        fi
    fi
    if [[ -n $weighers ]]; then
        value=$(_nmg_csv_remove "$weighers" "$NOVA_MIGRATION_GUARD_WEIGHER")
        if [[ ( -z $value || $value == "$_NMG_DEFAULT_WEIGHT_CLASSES" ) && $weighers != "$value" ]]; then
            inidelete "$file" filter_scheduler weight_classes
        elif [[ $value != "$weighers" ]]; then
            iniset "$file" filter_scheduler weight_classes "$value"
        fi
    fi
}

# _nmg_compute_driver FILE add|remove: the guarded libvirt driver in place
# of Nova's LibvirtDriver, or back.
function _nmg_compute_driver {
    local file=$1 action=$2 current
    current=$(iniget "$file" DEFAULT compute_driver)
    if [[ $action == add ]]; then
        if [[ $current != "$NOVA_MIGRATION_GUARD_COMPUTE_DRIVER" ]]; then
            iniset "$file" DEFAULT compute_driver "$NOVA_MIGRATION_GUARD_COMPUTE_DRIVER"
        fi
    elif [[ $current == migration_guard.* ]]; then
        iniset "$file" DEFAULT compute_driver "$_NMG_STOCK_LIBVIRT_DRIVER"
    fi
}

# _nmg_guard_options FILE GUARDS: the guards' own sections.
function _nmg_guard_options {
    local file=$1 guards=$2 backend section
    backend=$(_nmg_backend_url)
    iniset "$file" migration_guard guards "$guards"
    if [[ -n $backend ]]; then
        iniset "$file" migration_guard_coordination backend_url "$backend"
    else
        inidelete "$file" migration_guard_coordination backend_url
    fi
    if [[ -n $NOVA_MIGRATION_GUARD_ON_BACKEND_FAILURE ]]; then
        iniset "$file" migration_guard_coordination on_backend_failure "$NOVA_MIGRATION_GUARD_ON_BACKEND_FAILURE"
    else
        inidelete "$file" migration_guard_coordination on_backend_failure
    fi
    if [[ -n $NOVA_MIGRATION_GUARD_ANTI_AFFINITY_MODE ]] && _nmg_has_guard "$guards" anti_affinity; then
        iniset "$file" migration_guard_anti_affinity mode "$NOVA_MIGRATION_GUARD_ANTI_AFFINITY_MODE"
    else
        inidelete "$file" migration_guard_anti_affinity mode
    fi
    for section in $_NMG_SECTIONS; do
        _nmg_drop_empty_section "$file" "$section"
    done
}

# Write every line the settings ask for, and remove those they no longer
# ask for: the files end the same however often this runs.
function configure_nova_migration_guard {
    local guards conf
    guards=$(_nmg_guards) || die $LINENO "nova-migration-guard: NOVA_MIGRATION_GUARD_GUARDS is invalid"
    if [[ -z $guards ]]; then
        echo_summary "nova-migration-guard: no guards listed, removing its lines"
        remove_nova_migration_guard_config
        return 0
    fi
    echo_summary "Configuring nova-migration-guard: $guards"
    for conf in $(_nmg_nova_confs); do
        _nmg_guard_options "$conf" "$guards"
    done
    # The scheduler reads nova.conf.
    if is_service_enabled n-sch; then
        if _nmg_has_guard "$guards" anti_affinity; then
            _nmg_scheduler_classes "$NOVA_CONF" add
        else
            _nmg_scheduler_classes "$NOVA_CONF" remove
        fi
    fi
    if is_service_enabled n-cpu && [[ "${VIRT_DRIVER:-libvirt}" == libvirt ]]; then
        for conf in $(_nmg_compute_confs); do
            if _nmg_has_guard "$guards" migration_outcome && [[ -n $NOVA_MIGRATION_GUARD_COMPUTE_DRIVER ]]; then
                _nmg_compute_driver "$conf" add
            else
                _nmg_compute_driver "$conf" remove
            fi
        done
    fi
}

# Remove every line the plugin writes, from every file it writes to.
function remove_nova_migration_guard_config {
    local conf section
    for conf in $(_nmg_nova_confs); do
        if [[ ! -f $conf ]]; then
            continue
        fi
        inidelete "$conf" migration_guard guards
        inidelete "$conf" migration_guard_coordination backend_url
        inidelete "$conf" migration_guard_coordination on_backend_failure
        inidelete "$conf" migration_guard_anti_affinity mode
        for section in $_NMG_SECTIONS; do
            _nmg_drop_empty_section "$conf" "$section"
        done
        if grep -q '^\[filter_scheduler\]' "$conf"; then
            _nmg_scheduler_classes "$conf" remove
        fi
    done
    for conf in $(_nmg_compute_confs); do
        if [[ -f $conf ]]; then
            _nmg_compute_driver "$conf" remove
        fi
    done
}

# Restart this node's Nova services (systemd units devstack@<service>).
function restart_nova_migration_guard_services {
    local service
    local -a services=(n-api n-api-meta n-sch n-super-cond n-cond)
    local i
    for ((i = 1; i <= ${NOVA_NUM_CELLS:-1}; i++)); do
        services+=("n-cond-cell$i")
    done
    services+=(n-cpu)
    for service in "${services[@]}"; do
        if is_service_enabled "$service"; then
            restart_service "devstack@$service"
        fi
    done
}


# Dispatch
# --------

if [[ "${1:-}" == "stack" && "${2:-}" == "install" ]]; then
    install_nova_migration_guard
    if [[ "$NOVA_MIGRATION_GUARD_APPLY_PATCHES" == "True" ]]; then
        apply_nova_migration_guard_patches
    fi

elif [[ "${1:-}" == "stack" && "${2:-}" == "post-config" ]]; then
    configure_nova_migration_guard

elif [[ "${1:-}" == "stack" && "${2:-}" == "extra" ]]; then
    if [[ "$NOVA_MIGRATION_GUARD_RESTART_SERVICES" == "True" ]]; then
        echo_summary "Restarting Nova's services for nova-migration-guard"
        restart_nova_migration_guard_services
    fi
fi

if [[ "${1:-}" == "unstack" ]]; then
    remove_nova_migration_guard_config
fi

if [[ "${1:-}" == "clean" ]]; then
    remove_nova_migration_guard_config
    if [[ "$NOVA_MIGRATION_GUARD_APPLY_PATCHES" == "True" ]]; then
        revert_nova_migration_guard_patches
    fi
    if [[ "$NOVA_MIGRATION_GUARD_UNINSTALL_ON_CLEAN" == "True" ]]; then
        uninstall_nova_migration_guard
    fi
fi

$_NMG_XTRACE
