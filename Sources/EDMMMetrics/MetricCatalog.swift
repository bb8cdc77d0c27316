import Prometheus

/// One metric family: its name, type, labels and HELP text, and whose series it has (which sets
/// its cardinality). Every family edmmd exports is in `MetricCatalog.all`; docs/observability.md
/// lists the same families (a test compares them), and the shipped rules and dashboard may name
/// no other (scripts/check-monitoring.py).
public struct MetricSpec: Sendable, Equatable {
    public enum Kind: String, Sendable { case gauge, counter, histogram }

    /// Whose series a family has: one per machine, per process, per uid with enclaves, per
    /// Kubernetes container edmmd knows, or per enclave.
    public enum Scope: String, Sendable { case machine, process, uid, container, enclave }

    public let name: String
    public let kind: Kind
    public let scope: Scope
    /// Label names, in the order the series carry them.
    public let labels: [String]
    public let help: String

    init(_ name: String, _ kind: Kind, _ scope: Scope, labels: [String] = [], _ help: String) {
        self.name = name
        self.kind = kind
        self.scope = scope
        self.labels = labels
        self.help = help
    }

    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
}

/// Every metric family of the exposition. Names follow Prometheus' conventions: base units
/// (`_bytes`, `_seconds`), `_total` on counters, `_info` for constant 1 series that carry labels,
/// and the client libraries' `process_*` names for the process figures.
public enum MetricCatalog {
    // MARK: Machine-wide

    static let buildInfo = MetricSpec(
        "edmmd_build_info", .gauge, .machine, labels: ["version", "revision"], "edmmd's version and the commit it was built from; always 1."
    )
    static let device = MetricSpec(
        "edmmd_device_info", .gauge, .machine, labels: ["device"],
        "The device edmmd runs enclave ioctls on (kernel or simulated); always 1.")
    static let epcTotal = MetricSpec(
        "edmmd_epc_total_bytes", .gauge, .machine,
        "EPC of the machine: the simulated EPC, or the sum of /sys/devices/system/node/node*/x86/sgx_total_bytes (0 if unknown).")
    static let epcUsed = MetricSpec(
        "edmmd_epc_used_bytes", .gauge, .machine,
        """
        EPC in use: every page of the simulated EPC in use (SECS and VA pages included), or on the kernel device a lower bound: \
        the pages edmmd's ledgers hold and one SECS page per registered enclave (Linux publishes no EPC use).
        """
    )
    static let epcFree = MetricSpec("edmmd_epc_free_bytes", .gauge, .machine, "edmmd_epc_total_bytes minus edmmd_epc_used_bytes.")
    static let epcCommitted = MetricSpec(
        "edmmd_epc_committed_bytes", .gauge, .machine,
        "EPC held by registered enclaves according to edmmd's ledgers (lazy-free pools included).")
    static let epcPool = MetricSpec(
        "edmmd_epc_lazy_pool_bytes", .gauge, .machine, "Freed EPC kept committed in the enclaves' lazy-free pools.")
    static let epcTrimming = MetricSpec(
        "edmmd_epc_trimming_bytes", .gauge, .machine,
        "EPC on its way out of enclaves: EMODT(TRIM) queued or done and awaiting TRIM_ACCEPTED, or REMOVE_PAGES queued.")
    static let underPressure = MetricSpec(
        "edmmd_epc_under_pressure", .gauge, .machine,
        "1 while machine-wide EPC use is above the high watermark and pools are being reclaimed.")
    static let deviceReclaiming = MetricSpec(
        "edmmd_epc_device_reclaiming", .gauge, .machine,
        """
        1 when the device evicted EPC pages before the last pressure check: ksgxd ran (Linux runs it only with fewer than 64 EPC \
        pages free), or the simulated EPC wrote pages back. Pressure counts it as a full EPC.
        """
    )
    static let quotaLimit = MetricSpec(
        "edmmd_quota_limit_bytes", .gauge, .machine, labels: ["quota"],
        "The quotas in force: per enclave, per uid ([quota] uid, before overrides) and for the machine; absent when unlimited.")
    static let enclaves = MetricSpec("edmmd_enclaves", .gauge, .machine, "Registered enclaves.")
    static let connections = MetricSpec("edmmd_connections", .gauge, .machine, "Open client connections.")
    static let requests = MetricSpec(
        "edmmd_requests_total", .counter, .machine, labels: ["verb", "result"],
        "Requests answered, by verb and result: ok, or the error code of the refusal (quota-exceeded, not-owner, ...).")
    static let ioctls = MetricSpec(
        "edmmd_ioctls_total", .counter, .machine, labels: ["ioctl"], "SGX2 ioctl calls, retries included, by ioctl.")
    static let ioctlErrors = MetricSpec(
        "edmmd_ioctl_errors_total", .counter, .machine, "SGX2 ioctls that ended in an error after their retries.")
    static let ioctlRetries = MetricSpec(
        "edmmd_ioctl_retries_total", .counter, .machine, labels: ["errno"],
        "SGX2 ioctl calls resumed after EBUSY, EAGAIN or EINTR, by errno.")
    static let connectionEvents = MetricSpec(
        "edmmd_connection_events_total", .counter, .machine, labels: ["event"],
        "Connections accepted, refused (limit, shutdown) and dropped (unread replies).")
    static let registrations = MetricSpec(
        "edmmd_registrations_total", .counter, .machine, labels: ["event"], "Enclaves registered and unregistered, by event.")
    static let uncheckedRegistrations = MetricSpec(
        "edmmd_unchecked_registrations_total", .counter, .machine,
        "Kernel REGISTERs accepted without knowing whether edmmd already manages the enclave (kcmp(2) failed).")
    static let fastPath = MetricSpec(
        "edmmd_fast_path_requests_total", .counter, .machine, labels: ["path"],
        "Enclave requests the socket loop served itself (inline) or handed to the enclave's queue (handed_off).")
    static let malformedMessages = MetricSpec("edmmd_malformed_messages_total", .counter, .machine, "Messages that could not be decoded.")
    static let reclaimNotices = MetricSpec("edmmd_reclaim_notices_total", .counter, .machine, "RECLAIM notices sent to enclave hosts.")
    static let reclaimed = MetricSpec(
        "edmmd_reclaimed_bytes_total", .counter, .machine, "Lazy-pool EPC edmmd gave back (pool threshold, EPC pressure or admin RECLAIM).")
    static let reloadSuccessful = MetricSpec(
        "edmmd_config_last_reload_successful", .gauge, .machine,
        "Whether the last reload (RELOAD or SIGHUP) applied its file: 1, or 0 when it was refused.")
    static let reloadTime = MetricSpec(
        "edmmd_config_last_reload_success_timestamp_seconds", .gauge, .machine,
        "When the configuration in force was applied (start-up or the last successful reload), Unix time.")
    static let fdStoreDescriptors = MetricSpec(
        "edmmd_fd_store_descriptors", .gauge, .machine,
        "Descriptors edmmd keeps in systemd's FD store: its state, the simulated EPC, one per enclave; absent without the FD store.")
    static let fdStoreMax = MetricSpec(
        "edmmd_fd_store_max_descriptors", .gauge, .machine,
        "The unit's FileDescriptorStoreMax=, as systemd 254 and later tell the service ($FDSTORE); absent when unknown.")
    static let fdStoreLastWrite = MetricSpec(
        "edmmd_fd_store_last_write_timestamp_seconds", .gauge, .machine,
        "When the enclaves' state was last written to the FD store, Unix time; absent before the first write.")
    static let fdStoreWriteFailures = MetricSpec(
        "edmmd_fd_store_write_failures_total", .counter, .machine, "Writes of the enclaves' state to the FD store that failed.")

    // Histograms recorded by the daemon (DaemonInstruments).
    static let requestDuration = MetricSpec(
        "edmmd_request_duration_seconds", .histogram, .machine, labels: ["verb"], "Time from a request's arrival to its reply, by verb.")
    static let flushRequests = MetricSpec(
        "edmmd_flush_requests", .histogram, .machine, "Requests served by one flush of an enclave's queue (batch size).")
    static let ioctlPages = MetricSpec(
        "edmmd_ioctl_pages", .histogram, .machine, labels: ["ioctl"], "Pages per planned SGX2 ioctl, by ioctl.")

    // MARK: The edmmd process (the names every Prometheus client library uses)

    static let cpu = MetricSpec("process_cpu_seconds_total", .counter, .process, "User and system CPU time edmmd spent.")
    static let resident = MetricSpec("process_resident_memory_bytes", .gauge, .process, "edmmd's resident memory.")
    static let virtualMemory = MetricSpec("process_virtual_memory_bytes", .gauge, .process, "edmmd's virtual memory.")
    static let openFDs = MetricSpec(
        "process_open_fds", .gauge, .process, "Descriptors edmmd has open (each enclave and connection holds one).")
    static let maxFDs = MetricSpec(
        "process_max_fds", .gauge, .process, "edmmd's limit of open descriptors (RLIMIT_NOFILE, the unit's LimitNOFILE=).")
    static let startTime = MetricSpec("process_start_time_seconds", .gauge, .process, "When edmmd started, Unix time.")

    // MARK: Per uid with registered enclaves

    static let uidEnclaves = MetricSpec("edmmd_uid_enclaves", .gauge, .uid, labels: ["uid"], "Registered enclaves of the uid.")
    static let uidEPC = MetricSpec(
        "edmmd_uid_epc_bytes", .gauge, .uid, labels: ["uid"],
        "EPC the uid's enclaves hold, as its quota counts it (pools and trims included).")
    static let uidQuota = MetricSpec(
        "edmmd_uid_quota_bytes", .gauge, .uid, labels: ["uid"], "The uid's quota (its override, else [quota] uid); absent when unlimited.")

    // MARK: Per Kubernetes container ([kubernetes] enabled): the per-workload view

    static let containerLabels = ["namespace", "pod", "container"]
    static let containerEnclaves = MetricSpec(
        "edmmd_container_enclaves", .gauge, .container, labels: containerLabels, "Registered enclaves of the Kubernetes container.")
    static let containerEPC = MetricSpec(
        "edmmd_container_epc_bytes", .gauge, .container, labels: containerLabels,
        "EPC the container's enclaves hold, as its quota counts it (pools and trims included).")
    static let containerQuota = MetricSpec(
        "edmmd_container_quota_bytes", .gauge, .container, labels: containerLabels,
        "The quota the container's enclaves are checked against (its own, its pod's, or the default); absent when unlimited.")

    // MARK: Per enclave: what an operator acts on, labelled enclave and uid

    static let enclaveLabels = ["enclave", "uid"]
    static let enclaveInfo = MetricSpec(
        "edmmd_enclave_info", .gauge, .enclave, labels: ["enclave", "uid", "enclave_id", "pid", "label"],
        """
        The enclave's handle (enclave_id, which changes when it registers again), registering pid and, with enclave_labels = \"label\", \
        its label; always 1.
        """
    )
    static let enclaveEPC = MetricSpec(
        "edmmd_enclave_epc_bytes", .gauge, .enclave, labels: enclaveLabels,
        "Every EPC page edmmd's ledger charges to the enclave: committed, pool, trimming and TCS.")
    static let enclaveCommitted = MetricSpec(
        "edmmd_enclave_committed_bytes", .gauge, .enclave, labels: enclaveLabels,
        "EPC in use by the enclave, pages with an EMODPR or EMODT(TCS) queued included (as ENCLAVES reports).")
    static let enclaveCommittedLowerBound = MetricSpec(
        "edmmd_enclave_committed_lower_bound", .gauge, .enclave, labels: enclaveLabels,
        """
        1 when the enclave's committed figures are a lower bound: a client that sees only the host side (REGISTER with \
        implicit-commit) grows by fault-time EAUG that edmmd never sees.
        """
    )
    static let enclavePool = MetricSpec(
        "edmmd_enclave_lazy_pool_bytes", .gauge, .enclave, labels: enclaveLabels,
        "Freed EPC kept committed in the enclave's lazy-free pool.")
    static let enclaveTrimming = MetricSpec(
        "edmmd_enclave_trimming_bytes", .gauge, .enclave, labels: enclaveLabels,
        "EPC on its way out: EMODT(TRIM) queued or done and awaiting TRIM_ACCEPTED, or REMOVE_PAGES queued.")
    static let enclaveQuota = MetricSpec(
        "edmmd_enclave_quota_bytes", .gauge, .enclave, labels: enclaveLabels, "The enclave's quota; absent when unlimited.")
    static let enclaveRequests = MetricSpec(
        "edmmd_enclave_requests_total", .counter, .enclave, labels: enclaveLabels, "Requests on the enclave, all verbs.")
    static let enclaveFailures = MetricSpec(
        "edmmd_enclave_request_failures_total", .counter, .enclave, labels: enclaveLabels,
        "Requests on the enclave that failed (the reasons are in edmmd_requests_total).")
    static let enclaveIoctls = MetricSpec(
        "edmmd_enclave_ioctls_total", .counter, .enclave, labels: enclaveLabels, "SGX2 ioctl calls on the enclave, retries included.")
    static let enclaveIoctlErrors = MetricSpec(
        "edmmd_enclave_ioctl_errors_total", .counter, .enclave, labels: enclaveLabels,
        "SGX2 ioctls on the enclave that ended in an error after their retries.")
    static let enclaveReclaimed = MetricSpec(
        "edmmd_enclave_reclaimed_bytes_total", .counter, .enclave, labels: enclaveLabels, "Lazy-pool EPC edmmd gave back from this enclave."
    )

    /// Every family, in exposition order.
    public static let all: [MetricSpec] = [
        buildInfo, device, epcTotal, epcUsed, epcFree, epcCommitted, epcPool, epcTrimming, underPressure, deviceReclaiming, quotaLimit,
        enclaves,
        connections, requests, ioctls, ioctlErrors, ioctlRetries, connectionEvents, registrations, uncheckedRegistrations,
        fastPath, malformedMessages, reclaimNotices, reclaimed, reloadSuccessful, reloadTime, fdStoreDescriptors, fdStoreMax,
        fdStoreLastWrite, fdStoreWriteFailures, cpu, resident, virtualMemory, openFDs, maxFDs, startTime, uidEnclaves, uidEPC, uidQuota,
        containerEnclaves, containerEPC, containerQuota, enclaveInfo,
        enclaveEPC, enclaveCommitted, enclaveCommittedLowerBound, enclavePool, enclaveTrimming, enclaveQuota, enclaveRequests,
        enclaveFailures, enclaveIoctls,
        enclaveIoctlErrors, enclaveReclaimed, requestDuration, flushRequests, ioctlPages,
    ]
}
