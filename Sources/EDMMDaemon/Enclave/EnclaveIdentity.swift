import EDMMCore
import EDMMKubernetes
import EDMMProtocol

/// What REGISTER established about an enclave, fixed for its life: the handle edmmd gave it, the
/// client's label, the owner, the device behind it, ELRANGE and the range edmmd manages. The
/// enclave's queue (`EnclaveContext`), its published snapshot and its stored record all carry it.
public struct EnclaveIdentity: Equatable, Sendable {
    public var handle: EnclaveHandle
    public var label: String
    /// The registering peer; the enclave belongs to its uid.
    public var owner: PeerCredentials
    public var device: WireDeviceKind
    public var base: UInt64
    public var size: UInt64
    public var managed: PageRange
    /// REGISTER's flags for a client that sees only the host side (`RequestFlags.registration`).
    public var options: RequestFlags

    public init(
        handle: EnclaveHandle, label: String, owner: PeerCredentials, device: WireDeviceKind, base: UInt64, size: UInt64,
        managed: PageRange, options: RequestFlags = []
    ) {
        self.handle = handle
        self.label = label
        self.owner = owner
        self.device = device
        self.base = base
        self.size = size
        self.managed = managed
        self.options = options
    }

    /// The committed figure counts only the pages edmmd has seen: the enclave grows by
    /// fault-time EAUG that its host never reports (implicit commit).
    public var committedIsLowerBound: Bool { options.contains(.implicitCommit) }
}

extension EnclaveIdentity {
    /// The identity in the FD store's record format (`EnclaveRecord`).
    func encode(into w: inout WireWriter) {
        w.u64(handle)
        w.string(label)
        w.u32(UInt32(bitPattern: owner.pid))
        w.u32(owner.uid)
        w.u32(owner.gid)
        w.list(owner.groups) { w, gid in w.u32(gid) }
        w.string(owner.scope?.podUID ?? "")
        w.string(owner.scope?.containerID ?? "")
        w.u8(device.rawValue)
        w.u64(base)
        w.u64(size)
        w.u64(managed.first)
        w.u64(managed.count)
        w.u16(options.rawValue)
    }

    /// Records of version 1 have no scope, those before version 3 no options.
    init(decoding r: inout WireReader, recordVersion: UInt16) throws(DecodeError) {
        handle = try r.u64("handle")
        label = try r.string("label", maxBytes: 64)
        let pid = Int32(bitPattern: try r.u32("pid"))
        let uid = try r.u32("uid")
        let gid = try r.u32("gid")
        let groups = try r.list("groups", maxCount: 65_536, minElementBytes: 4) { (r: inout WireReader) throws(DecodeError) in
            try r.u32("group")
        }
        owner = PeerCredentials(pid: pid, uid: uid, gid: gid, groups: groups)
        if recordVersion >= 2 {
            let scopeAt = r.position
            let pod = try r.string("scope.podUID", maxBytes: maxScopeKeyBytes)
            let container = try r.string("scope.containerID", maxBytes: maxScopeKeyBytes)
            if !pod.isEmpty {
                guard let podUID = ContainerScope.canonicalPodUID(pod) else { throw DecodeError("bad pod UID", at: scopeAt) }
                owner.scope = ContainerScope(podUID: podUID, containerID: container.isEmpty ? nil : container)
            }
        }
        let deviceAt = r.position
        guard let device = WireDeviceKind(rawValue: try r.u8("device")) else { throw DecodeError("unknown device", at: deviceAt) }
        self.device = device
        base = try r.u64("base")
        size = try r.u64("size")
        managed = try EnclaveRecord.range(&r, "managed")
        if recordVersion >= 3 {
            let optionsAt = r.position
            options = RequestFlags(rawValue: try r.u16("options"))
            guard RequestFlags.registration.isSuperset(of: options) else { throw DecodeError("unknown options", at: optionsAt) }
        } else {
            options = []
        }
    }
}
