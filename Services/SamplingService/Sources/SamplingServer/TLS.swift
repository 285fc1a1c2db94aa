import HummingbirdCore
import HummingbirdTLS
import NIOSSL

extension ServerConfiguration.TLSFiles {
    /// The server's TLS configuration from the PEM files, or the error that names the file at
    /// fault (read at start, before the port opens).
    func configuration() throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate], key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMFile(certificateChain) } catch {
            throw ServiceError(0, field: "--tls-certificate", "'\(certificateChain)' is not a readable PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw ServiceError(0, field: "--tls-certificate", "'\(certificateChain)' holds no certificate") }
        do { key = try NIOSSLPrivateKey(file: privateKey, format: .pem) } catch {
            throw ServiceError(0, field: "--tls-key", "'\(privateKey)' is not a readable PEM private key (\(error))")
        }
        var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        c.minimumTLSVersion = .tlsv12
        // A key that does not belong to the certificate fails here, at start, not at the first handshake.
        do { _ = try NIOSSLContext(configuration: c) } catch {
            throw ServiceError(0, field: "--tls-key", "'\(privateKey)' does not go with the certificate '\(certificateChain)' (\(error))")
        }
        return c
    }
}

extension HTTPServerBuilder {
    /// `http`, behind TLS when `files` are given.
    static func serving(_ http: HTTPServerBuilder, tls files: ServerConfiguration.TLSFiles?) throws -> HTTPServerBuilder {
        guard let files else { return http }
        return try .tls(http, tlsConfiguration: files.configuration())
    }
}
