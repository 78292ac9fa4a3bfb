//! The builder's seccomp filters: system calls that reach the kernel's global state (modules,
//! kexec, swap, keyrings, perf, BPF), that would let the builder leave or reshape its sandbox
//! (new namespaces, mounts, `setns`, `ptrace`), or that widen the kernel's attack surface for
//! no build's benefit (`io_uring`, `userfaultfd`, raw packet sockets) fail with `EPERM`, and
//! so do the `ioctl`s that type into a terminal (`TIOCSTI`, `TIOCLINUX`), which an interactive
//! session shares with the user.
//! `clone3` fails with `ENOSYS`, so the C library falls back to `clone`, whose flags the filter
//! can inspect (`clone3` passes them in memory, out of a filter's reach). On x86_64 the x32
//! ABI (system call numbers with bit 0x40000000) is refused, and every filter kills a process
//! that calls in through another architecture's ABI.
//!
//! Allowed on purpose: `chroot` (rpm scriptlets), `setxattr` (rpm sets file capabilities,
//! which stay namespaced; outputs are canonicalised later) and `chmod` of any mode.
//!
//! The programs are compiled by `seccompiler` in the parent, before the clone, because the
//! child may not allocate; the child installs them with the raw `seccomp` system call after
//! `PR_SET_NO_NEW_PRIVS`, right before `execve`.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::error::SandboxError;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// System calls refused outright.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_lookup_dcookie,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// Every `CLONE_NEW*` flag `clone` accepts (`CLONE_NEWTIME` shares its bit with the exit
/// signal there and only works through `unshare` and `clone3`, both refused).
const CLONE_NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The compiled filters, in the order they are installed.
#[derive(Debug)]
pub(crate) struct BuilderFilters {
    /// Which filter each program is, for error reports.
    pub programs: Vec<(&'static str, Vec<sock_filter>)>,
}

fn compile_error(err: seccompiler::BackendError) -> SandboxError {
    SandboxError::InvalidSpec(format!("compiling the builder's seccomp filter: {err}"))
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(compile_error)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
) -> Result<Vec<sock_filter>, SandboxError> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, action, ARCH).map_err(compile_error)?;
    BpfProgram::try_from(filter).map_err(compile_error)
}

/// The `EPERM` filter: [`DENIED`], `clone` with a namespace flag, `socket(AF_PACKET, ...)`,
/// `ioctl(_, TIOCSTI | TIOCLINUX)`.
fn denial_filter() -> Result<Vec<sock_filter>, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&number| (number, Vec::new())).collect();
    let clone_rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            // The flag is a positive bit pattern; widening keeps it.
            let bit = flag as u64;
            SeccompRule::new(vec![condition(0, SeccompCmpOp::MaskedEq(bit), bit)?])
                .map_err(compile_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // Typing into a terminal shared with kiln's caller (an interactive session's), or the
    // Linux console's selection tricks.
    // The request numbers are `c_ulong`s, 64 bits on the architectures kiln builds for.
    let terminal_injection: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];
    let terminal_injection = terminal_injection
        .into_iter()
        .map(|request| {
            SeccompRule::new(vec![condition(
                1,
                SeccompCmpOp::MaskedEq(0xffff_ffff),
                request,
            )?])
            .map_err(compile_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, terminal_injection);
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![condition(
            0,
            SeccompCmpOp::MaskedEq(0xffff_ffff),
            libc::AF_PACKET as u64,
        )?])
        .map_err(compile_error)?],
    );
    compile(rules, SeccompAction::Errno(libc::EPERM as u32))
}

/// The `ENOSYS` filter for `clone3`.
fn clone3_filter() -> Result<Vec<sock_filter>, SandboxError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    compile(rules, SeccompAction::Errno(libc::ENOSYS as u32))
}

/// On x86_64: refuse x32 system calls (their numbers carry bit 0x40000000).
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> Vec<sock_filter> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let (ld_abs, jeq, jset, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    vec![
        // seccomp_data.arch (offset 4): anything but x86_64 is killed.
        stmt(ld_abs, 4),
        jump(jeq, AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
        // seccomp_data.nr (offset 0).
        stmt(ld_abs, 0),
        jump(jset, X32_SYSCALL_BIT, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Compiles the builder's filters.
pub(crate) fn builder_filters() -> Result<BuilderFilters, SandboxError> {
    let programs = vec![
        #[cfg(target_arch = "x86_64")]
        ("x32 ABI refusal", x32_filter()),
        ("EPERM denials", denial_filter()?),
        ("clone3 ENOSYS", clone3_filter()?),
    ];
    Ok(BuilderFilters { programs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_and_cover_every_denied_call() {
        let filters = builder_filters().expect("compile");
        let denial = &filters
            .programs
            .iter()
            .find(|(name, _)| *name == "EPERM denials")
            .expect("denial filter")
            .1;
        for number in DENIED {
            let wanted = u32::try_from(*number).expect("small syscall number");
            assert!(
                denial.iter().any(|insn| insn.k == wanted && insn.jt == 0),
                "syscall {number} has no comparison in the filter"
            );
        }
        assert!(denial.len() < 4096);
    }
}
