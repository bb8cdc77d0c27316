import Prometheus

/// One metric family: its full name and HELP text. Every family edmmd exports is listed in
/// `MetricCatalog`; a name is always registered with the same HELP (swift-prometheus traps on a
/// mismatch).
struct MetricSpec: Sendable {
    let name: String
    let help: String

    init(_ name: String, _ help: String) {
        self.name = name
        self.help = help
    }

    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
}

extension PrometheusCollectorRegistry {
    func gauge(_ spec: MetricSpec, _ labels: [(String, String)] = []) -> Gauge {
        makeGauge(descriptor: spec.descriptor, labels: labels)
    }

    func counter(_ spec: MetricSpec, _ labels: [(String, String)] = []) -> Counter {
        makeCounter(descriptor: spec.descriptor, labels: labels)
    }
}

extension Counter {
    /// Mirrors a tally the daemon keeps (its snapshot is the single source of truth). Only the
    /// exporter, under its scrape lock, touches these counters, so no scrape sees the reset.
    func mirror(_ value: UInt64) {
        reset()
        increment(by: Int64(clamping: value))
    }
}

/// Every metric family of the exposition (docs/observability.md lists them with their labels).
enum MetricCatalog {
    // Daemon and machine.
    static let buildInfo = MetricSpec("edmmd_build_info", "edmmd's version; always 1.")
    static let device = MetricSpec(
        "edmmd_device_info", "The device edmmd runs enclave ioctls on (kernel or simulated); always 1.")
    static let epcTotal = MetricSpec(
        "edmmd_epc_total_bytes",
        "EPC of the machine: the simulated EPC, or the sum of /sys/devices/system/node/node*/x86/sgx_total_bytes (0 if unknown).")
    static let epcUsed = MetricSpec(
        "edmmd_epc_used_bytes",
        "EPC in use: resident pages of the simulated EPC, or on the kernel device the pages edmmd's ledgers hold.")
    static let epcFree = MetricSpec("edmmd_epc_free_bytes", "edmmd_epc_total_bytes minus edmmd_epc_used_bytes.")
    static let epcCommitted = MetricSpec(
        "edmmd_epc_committed_bytes", "EPC held by registered enclaves according to edmmd's ledgers (lazy-free pools included).")
    static let underPressure = MetricSpec(
        "edmmd_epc_under_pressure", "1 while machine-wide EPC use is above the high watermark and pools are being reclaimed.")
    static let enclaves = MetricSpec("edmmd_enclaves", "Registered enclaves.")
    static let connections = MetricSpec("edmmd_connections", "Open client connections.")
    static let requests = MetricSpec("edmmd_requests_total", "Requests answered, by verb and result.")
    static let ioctls = MetricSpec("edmmd_ioctls_total", "SGX2 ioctl calls, retries included, for every enclave.")
    static let connectionEvents = MetricSpec(
        "edmmd_connection_events_total", "Connections accepted, refused (limit, shutdown) and dropped (unread replies).")
    static let registrations = MetricSpec("edmmd_registrations_total", "Enclaves registered and unregistered, by event.")
    static let malformedMessages = MetricSpec("edmmd_malformed_messages_total", "Messages that could not be decoded.")
    static let reclaimNotices = MetricSpec("edmmd_reclaim_notices_total", "RECLAIM notices sent to enclave hosts.")
    static let reclaimedPages = MetricSpec(
        "edmmd_reclaimed_pages_total", "Lazy-pool pages edmmd gave back (pool threshold, EPC pressure or admin RECLAIM).")

    // Histograms recorded by the daemon (DaemonInstruments).
    static let requestDuration = MetricSpec(
        "edmmd_request_duration_seconds", "Time from a request's arrival to its reply, by verb.")
    static let flushRequests = MetricSpec("edmmd_flush_requests", "Requests served by one flush of an enclave's queue (batch size).")
    static let ioctlPages = MetricSpec("edmmd_ioctl_pages", "Pages per planned SGX2 ioctl, by ioctl.")

    // Per enclave, labelled enclave (its label), enclave_id and uid.
    static let enclaveCommitted = MetricSpec(
        "edmmd_enclave_committed_pages", "Committed pages in use by the enclave, those with an EMODPR or EMODT(TCS) queued included (as ENCLAVES reports).")
    static let enclavePool = MetricSpec(
        "edmmd_enclave_lazy_pool_pages", "Freed pages kept committed in the enclave's lazy-free pool.")
    static let enclaveTrimming = MetricSpec(
        "edmmd_enclave_trimming_pages", "Pages on their way out: EMODT(TRIM) queued or done, awaiting TRIM_ACCEPTED.")
    static let enclaveRemoving = MetricSpec("edmmd_enclave_removing_pages", "Pages whose REMOVE_PAGES is queued.")
    static let enclaveTCS = MetricSpec("edmmd_enclave_tcs_pages", "TCS pages.")
    static let enclaveEPC = MetricSpec(
        "edmmd_enclave_epc_pages", "Every EPC page the ledger charges to the enclave (the sum of all states).")
    static let enclaveQuota = MetricSpec(
        "edmmd_enclave_quota_pages", "The enclave's page quota; absent when unlimited.")
    static let enclaveSize = MetricSpec("edmmd_enclave_size_bytes", "Size of the enclave's ELRANGE.")
    static let enclaveConnections = MetricSpec("edmmd_enclave_connections", "Connections that registered or attached the enclave.")
    static let enclaveRequests = MetricSpec("edmmd_enclave_requests_total", "Requests on the enclave, by verb and result.")
    static let enclaveIoctls = MetricSpec("edmmd_enclave_ioctls_total", "SGX2 ioctl calls on the enclave, retries included, by ioctl.")
    static let enclaveIoctlPages = MetricSpec("edmmd_enclave_ioctl_pages_total", "Pages the enclave's ioctls completed, by ioctl.")
    static let enclaveRetries = MetricSpec(
        "edmmd_enclave_ioctl_retries_total", "ioctl calls resumed after EBUSY, EAGAIN or EINTR, by errno.")
    static let enclaveIoctlErrors = MetricSpec(
        "edmmd_enclave_ioctl_errors_total", "ioctls that ended in an error after their retries.")
    static let enclaveReclaimed = MetricSpec(
        "edmmd_enclave_reclaimed_pages_total", "Lazy-pool pages edmmd gave back from this enclave.")
    static let enclaveFlushes = MetricSpec("edmmd_enclave_flushes_total", "Flushes of the enclave's queue.")
}
