import EDMMCore
import EDMMProtocol
import EDMMSystem
import Logging
import SGXDevice

/// Where the daemon's enclaves live: what the device is, how an enclave comes from a client's
/// descriptor, and what else the daemon may ask of it. One conformance per device
/// (`KernelBackend`, `SimulatedBackend`), picked once at start-up (`DeviceChoice`). The rest of
/// the daemon sees only this protocol and `OpenedEnclave`: a new device (an ioctl proxy, say)
/// is one more file in this folder and one more case in `DeviceChoice`.
protocol DeviceBackend: Sendable {
    /// What HELLO, STATUS and the start-up log say the device is.
    var mode: WireDeviceKind { get }
    /// One line for the start-up log and every STATUS ("--simulate given", "no SGX2 here: ...").
    var reason: String { get }
    /// The EPC size in pages; 0 when unknown (kernel mode without the sysfs figures).
    var epcTotalPages: UInt64 { get }
    /// EPC pages in use now, when the device can tell (the simulated EPC); nil: the ledgers'
    /// charges are the measure.
    var epcUsedPages: UInt64? { get }
    /// Whether the device evicted EPC pages since the previous sample (ksgxd ran on Linux; the
    /// simulated EPC wrote pages back); nil when it cannot tell. The supervisor alone samples, once
    /// a tick.
    func sampleReclaimActivity() -> Bool?
    /// The device's own STATUS counters (the simulated EPC's figures); empty for the kernel.
    var statusCounters: [WireCounter] { get }
    /// A clause for the service manager's status line (a simulated EPC lock held), or nil.
    var statusNote: String? { get }

    /// Opens the enclave a client's descriptor names. The descriptor is consumed: an enclave that
    /// keeps it (a kernel enclave) takes it over, anything else closes it.
    func openEnclave(_ descriptor: consuming OwnedDescriptor) throws(WireError) -> any OpenedEnclave

    /// The descriptor every HELLO reply carries (the simulated EPC), kept open while the returned
    /// object lives; nil when clients need none.
    var helloDescriptor: (any SharedDeviceDescriptor)? { get }
    /// Taking over a device a client offers in HELLO (a restarted daemon's predecessor's simulated
    /// EPC); nil when this device cannot.
    var takeOver: (any DeviceTakeOver)? { get }
    /// The descriptor the FD store keeps for the device itself (`machine`); nil: none.
    var storableDescriptor: Int32? { get }

    /// Upkeep on every supervisor tick (core queue): must never wait on anything a client holds.
    func maintain(now: MonotonicInstant, logger: Logger)
}

/// One enclave a backend opened: its three ioctls, and what else the daemon may ask of it.
/// Owned by the enclave's queue (`EnclaveState`); the registry keeps it to compare identities.
protocol OpenedEnclave: AnyObject, Sendable {
    var kind: WireDeviceKind { get }
    /// The SGX2 ioctls, with the kernel's calling convention.
    var device: any EnclaveDevice { get }
    /// The descriptor the FD store keeps for this enclave (borrowed: the enclave keeps it open).
    var storableDescriptor: Int32 { get }
    /// ELRANGE as the device knows it; nil when it cannot tell (the kernel offers no query).
    var elrange: (base: UInt64, size: UInt64)? { get }
    /// The EPCM, for a device that can read it: adoption, reconciliation, the STATS comparison.
    var epcm: (any EPCMInspector)? { get }
    /// The device's own STATS counters; empty for the kernel.
    var statsCounters: [WireCounter] { get }
    /// A value equal for every descriptor of this enclave and for no other enclave, when the
    /// device has one (the simulated machine's enclave table entry); nil when identity takes a
    /// pairwise comparison (`isSameEnclave`: the kernel's kcmp(2)).
    var identityKey: AnyHashable? { get }
    /// Whether `other` is this same enclave, whatever descriptor brought each (one enclave, one
    /// ledger); throws when the device cannot tell.
    func isSameEnclave(as other: any OpenedEnclave) throws(IdentityUnknown) -> Bool
    /// Ends the daemon's hold on the enclave beyond its descriptor (a simulated enclave's
    /// attachment), which closes when the last reference goes.
    func close()
}

/// A descriptor the daemon hands to clients (the simulated EPC's memfd), open while this lives.
protocol SharedDeviceDescriptor: AnyObject, Sendable {
    var fd: Int32 { get }
}

/// Takes over a device a client offers in HELLO: the daemon's own, or a predecessor's when
/// nothing is open in the current one (docs/protocol.md, HELLO).
protocol DeviceTakeOver: Sendable {
    /// The device `descriptor` (the caller's) names, now the one HELLO hands out, and the
    /// identifiers of the device taken over and of the one it replaced when it changed.
    func adopt(_ descriptor: borrowing OwnedDescriptor) throws(WireError) -> (
        handed: any SharedDeviceDescriptor, replaced: (taken: String, previous: String)?
    )
}

/// Why two enclaves could not be compared (kcmp(2) unavailable).
struct IdentityUnknown: Error, Equatable, CustomStringConvertible {
    var description: String
}
