import EDMMClient
import EDMMProtocol
import Glibc
import Testing

extension EndToEnd {
    /// Who a client is is decided by SO_PEERCRED when it connects, and enclaves belong to that
    /// uid. Real processes of other users, made by dropping privileges (setgid/setuid) before exec;
    /// the tests run as root.
    @Suite(.enabled(if: getuid() == 0, "drops privileges in child processes: run as root"))
    struct Isolation {
        static let owner = Credentials(uid: 65534, gid: 65534)
        static let stranger = Credentials(uid: 65533, gid: 65533)
        /// A daemon whose socket anyone may connect to, in a directory anyone may enter.
        static func openDaemon(_ config: String = "") throws -> DaemonProcess {
            let daemon = try DaemonProcess(config: "[daemon]\nsocket_mode = 0o666\n" + config)
            chmod(daemon.directory.path, 0o755)
            return daemon
        }

        @Test func theEnclaveBelongsToTheUserWhoseProcessConnected() async throws {
            let daemon = try Self.openDaemon()
            let host = try spawnHost(as: Self.owner, daemon: daemon, label: "nobodys")
            #expect(host.awaitReady())
            let observer = try await daemon.connect()
            defer { observer.close() }
            let enclaves = try await observer.allEnclaves()
            #expect(enclaves.count == 1)
            #expect(enclaves.first?.uid == Self.owner.uid && enclaves.first?.gid == Self.owner.gid)
            // The host is setpriv's child-by-exec: same pid.
            #expect(enclaves.first?.pid == UInt32(host.pid))
            #expect(host.stopAndReport() != nil)
            #expect(daemon.stop() == 0)
        }

        @Test func aClientOfAnotherUIDCanNeitherSeeNorTouchAnEnclave() async throws {
            let daemon = try Self.openDaemon()
            let host = try spawnHost(as: Self.owner, daemon: daemon, label: "owned")
            #expect(host.awaitReady())
            let observer = try await daemon.connect()
            defer { observer.close() }
            let handle = try #require(try await observer.allEnclaves().first?.enclave)
            let range = WireRange(offset: 1 << 20, length: 4096)

            let stranger = try connect(as: Self.stranger, to: daemon.socketPath, log: daemon.directory.path + "/stranger.log")
            try stranger.hello()
            guard
                case .success(.enclaves(let list)) = try stranger.reply(to: try stranger.send([.enclaves(EnclaveListRequest())])[0]).outcome
            else {
                Issue.record("ENCLAVES failed")
                return
            }
            #expect(list.total == 0 && list.enclaves.isEmpty, "another uid's enclave is listed")
            let attempts: [Request] = [
                .stats(handle), .attach(handle), .sync(handle), .unregister(handle),
                .allocate(AllocateRequest(enclave: handle, length: 4096)),
                .free(RangeRequest(enclave: handle, range: range)), .trim(RangeRequest(enclave: handle, range: range)),
                .trimAccepted(RangeRequest(enclave: handle, range: range)), .makeTCS(RangeRequest(enclave: handle, range: range)),
                .restrict(PermissionsRequest(enclave: handle, range: range, permissions: .read)),
                .relax(PermissionsRequest(enclave: handle, range: range, permissions: .rwx)),
            ]
            for request in attempts {
                let error = try stranger.error(of: request)
                #expect(error?.code == .notOwner, "\(request.verb) from another uid: \(String(describing: error))")
            }
            #expect(try stranger.error(of: .reclaim(ReclaimRequest(enclave: handle)))?.code == .notAdmin)

            // The owner's other processes may use it: what the refusal is about is the uid.
            let sameUser = try connect(as: Self.owner, to: daemon.socketPath, log: daemon.directory.path + "/same-user.log")
            try sameUser.hello()
            #expect(try sameUser.error(of: .attach(handle)) == nil)
            #expect(try sameUser.error(of: .stats(handle)) == nil)

            let report = try #require(host.stopAndReport())
            #expect(report.hostMatchesEPCM && report.ledger.problems.isEmpty && report.problems.isEmpty && report.violations.isEmpty)
            #expect(daemon.stop() == 0)
        }

        /// METRICS keeps the boundary ENCLAVES keeps: per-enclave and per-uid series of other
        /// uids are not rendered for a peer that is neither root nor in the admin group.
        @Test func metricsOverTheSocketShowAUserOnlyItsOwnUIDsEnclavesAndAnAdminAll() async throws {
            // Not nogroup: the owner's primary group.
            let daemon = try Self.openDaemon("admin_group = \"daemon\"\n")
            let owned = try spawnHost(as: Self.owner, daemon: daemon, label: "owner-secret")
            #expect(owned.awaitReady())
            let root = try await daemon.host("roots-secret")
            defer { root.close() }
            let log = daemon.directory.path + "/metrics.log"
            func metrics(as credentials: Credentials) throws -> String {
                let connection = try connect(as: credentials, to: daemon.socketPath, log: log)
                try connection.hello()
                var text = ""
                var offset: UInt32 = 0
                while true {
                    let id = try connection.send([.metrics(MetricsRequest(offset: offset))])[0]
                    guard case .success(.metrics(let chunk)) = try connection.reply(to: id).outcome else {
                        Issue.record("METRICS failed for \(credentials)")
                        return text
                    }
                    text += chunk.text
                    offset = chunk.offset + UInt32(chunk.text.utf8.count)
                    if chunk.text.isEmpty || offset >= chunk.totalBytes { return text }
                }
            }
            let owner = try metrics(as: Self.owner)
            #expect(owner.contains("edmmd_enclave_info{enclave=\"owner-secret\",uid=\"\(Self.owner.uid)\""))
            #expect(owner.contains("edmmd_uid_epc_bytes{uid=\"\(Self.owner.uid)\"}"))
            #expect(!owner.contains("roots-secret") && !owner.contains("uid=\"0\""), "the owner sees root's enclave")
            #expect(owner.contains("edmmd_enclaves 2"), "machine-wide series are for everyone, as in STATUS")

            let stranger = try metrics(as: Self.stranger)
            #expect(!stranger.contains("secret"), "a stranger sees an enclave's label")
            #expect(!stranger.contains("uid=\""), "a stranger sees another uid's series")
            #expect(stranger.contains("# TYPE edmmd_enclave_info gauge"))

            for admin in [Credentials(uid: 65532, gid: 65532, groups: [1]), Credentials(uid: 0, gid: 0)] {
                let all = try metrics(as: admin)
                #expect(all.contains("enclave=\"owner-secret\"") && all.contains("enclave=\"roots-secret\""), "\(admin) sees every enclave")
            }
            let report = try #require(owned.stopAndReport())
            #expect(report.hostMatchesEPCM)
            #expect(daemon.stop() == 0)
        }

        @Test func adminVerbsNeedRootOrTheAdminGroupWhetherPrimaryOrSupplementary() async throws {
            let daemon = try Self.openDaemon("admin_group = \"nogroup\"\n")
            let host = try await daemon.host("roots")
            defer { host.close() }
            let log = daemon.directory.path + "/admins.log"
            let members = [
                Credentials(uid: 65532, gid: 65534),
                Credentials(uid: 65532, gid: 65532, groups: [65534]),
            ]
            for member in members {
                let connection = try connect(as: member, to: daemon.socketPath, log: log)
                try connection.hello()
                #expect(try connection.error(of: .reclaim(ReclaimRequest())) == nil, "RECLAIM from \(member)")
                #expect(try connection.error(of: .reload) == nil, "RELOAD from \(member)")
                #expect(try connection.error(of: .stats(host.handle)) == nil, "an admin sees every enclave")
                #expect(try connection.error(of: .attach(host.handle))?.code == .notOwner, "seeing is not using")
            }
            // A member by supplementary group whose process is gone before edmmd even accepts
            // the connection: /proc has nothing left to read; the groups the kernel captured at
            // connect (SO_PEERGROUPS) still make it a member.
            kill(daemon.pid, SIGSTOP)
            let early = try connect(as: members[1], to: daemon.socketPath, log: log)
            kill(daemon.pid, SIGCONT)
            try early.hello()
            #expect(try early.error(of: .reclaim(ReclaimRequest())) == nil, "RECLAIM from a member whose process has exited")
            let outsider = try connect(as: Self.stranger, to: daemon.socketPath, log: log)
            try outsider.hello()
            #expect(try outsider.error(of: .reclaim(ReclaimRequest()))?.code == .notAdmin)
            #expect(try outsider.error(of: .reload)?.code == .notAdmin)
            let root = try await daemon.connect()
            defer { root.close() }
            _ = try await root.reclaim()
            await expectLedgersMatch([host])
            #expect(daemon.stop() == 0)
        }

        @Test func theSocketEdmmdBindsHasTheConfiguredModeAndGroupAndOnlyThoseMayConnect() async throws {
            let daemon = try DaemonProcess(config: "[daemon]\nsocket_mode = 0o660\nsocket_group = \"nogroup\"\n")
            chmod(daemon.directory.path, 0o755)
            var info = stat()
            #expect(lstat(daemon.socketPath, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_mode & 0o7777 == 0o660)
            #expect(info.st_gid == 65534)
            let log = daemon.directory.path + "/connect.log"
            #expect(throws: ConnectionRefused.self, "a process outside the socket's group connects") {
                _ = try connect(as: Self.stranger, to: daemon.socketPath, log: log)
            }
            let member = try connect(as: Credentials(uid: 65533, gid: 65533, groups: [65534]), to: daemon.socketPath, log: log)
            try member.hello()
            #expect(member.stillServed)
            #expect(daemon.stop() == 0)
        }
    }
}
