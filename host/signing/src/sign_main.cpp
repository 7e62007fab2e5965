// firelink-sign: a vendor's signing of plugin files without installing minisign. Writes minisign's public key and
// signature formats, so `minisign -V` checks its signatures and firelink-host checks minisign's.
//   firelink-sign keygen -p vendor.pub -s vendor.key
//   firelink-sign sign -s vendor.key [-t "trusted comment"] [--legacy] FILE...   (writes FILE.minisig)
//   firelink-sign verify -p vendor.pub FILE...
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <firelink/signing/minisign.hpp>

namespace sg = firelink::signing;

namespace {

// Written whole or not at all; the secret key readable by its owner only.
bool write_file(const std::string &path, const std::string &text, mode_t mode, bool overwrite) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL), mode);
    if (fd < 0) {
        std::perror(path.c_str());
        return false;
    }
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (::close(fd) != 0 || !ok) {
        std::fprintf(stderr, "%s: write failed\n", path.c_str());
        return false;
    }
    return true;
}

std::string default_comment(const std::string &file) {
    const auto name = std::filesystem::path(file).filename().string();
    return "timestamp:" + std::to_string(std::time(nullptr)) + "\tfile:" + name;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink-sign: minisign-compatible Ed25519 signatures of firelink plugin files"};
    app.require_subcommand(1);
    std::string pub_path, sec_path, comment;
    std::vector<std::string> files;
    bool force = false, legacy = false;

    auto *keygen = app.add_subcommand("keygen", "Make a key pair (the public key for sites, the secret for you)");
    keygen->add_option("-p,--public", pub_path, "public key file to write (minisign format)")->required();
    keygen->add_option("-s,--secret", sec_path, "secret key file to write (PEM, mode 0600)")->required();
    keygen->add_flag("-f,--force", force, "overwrite existing files");

    auto *sign = app.add_subcommand("sign", "Sign files: FILE.minisig beside each");
    sign->add_option("-s,--secret", sec_path, "secret key file (from keygen)")->required();
    sign->add_option("-t,--trusted-comment", comment, "signed comment (default: timestamp and file name)");
    sign->add_flag("--legacy", legacy, "sign the file itself (\"Ed\") rather than its BLAKE2b-512 (\"ED\")");
    sign->add_option("FILE", files, "files to sign")->required();

    auto *verify = app.add_subcommand("verify", "Check FILE.minisig of each file against a public key");
    verify->add_option("-p,--public", pub_path, "public key file")->required();
    verify->add_option("FILE", files, "files to check")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        if (*keygen) {
            const auto k = sg::generate_key();
            if (!write_file(sec_path, sg::secret_key_text(k), 0600, force) ||
                !write_file(pub_path, sg::public_key_text(k.pub()), 0644, force))
                return 1;
            std::printf("key ID %s: public key %s, secret key %s\n", sg::to_hex(k.id).c_str(), pub_path.c_str(),
                        sec_path.c_str());
            return 0;
        }
        if (*sign) {
            const auto text = sg::read_small_file(sec_path, sg::max_key_bytes);
            if (!text) return std::fprintf(stderr, "%s: unreadable\n", sec_path.c_str()), 1;
            auto key = sg::parse_secret_key(*text);
            if (!key) return std::fprintf(stderr, "%s: %s\n", sec_path.c_str(), key.why().c_str()), 1;
            for (const auto &f : files) {
                const auto data = sg::read_small_file(f, sg::max_plugin_bytes);
                if (!data) return std::fprintf(stderr, "%s: unreadable, or larger than the cap\n", f.c_str()), 1;
                const auto sig = sg::sign(*data, *key,
                                          comment.empty() ? default_comment(f) : comment, !legacy);
                if (!write_file(f + ".minisig", sig, 0644, true)) return 1;
                std::printf("%s.minisig: signed by key ID %s\n", f.c_str(),
                            sg::to_hex(key->id).c_str());
            }
            return 0;
        }
        if (*verify) {
            auto key = sg::read_public_key(pub_path);
            if (!key) return std::fprintf(stderr, "%s: %s\n", pub_path.c_str(), key.why().c_str()), 1;
            int failed = 0;
            for (const auto &f : files) {
                const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    std::perror(f.c_str());
                    ++failed;
                    continue;
                }
                const auto v = sg::verify_fd(fd, f + ".minisig", {*key});
                ::close(fd);
                if (v.ok())
                    std::printf("%s: signed by key ID %s, trusted comment: %s\n", f.c_str(), sg::to_hex(*v.id).c_str(),
                                v.trusted_comment.c_str());
                else
                    std::printf("%s: NOT VERIFIED: %s\n", f.c_str(), v.why.c_str()), ++failed;
            }
            return failed == 0 ? 0 : 1;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "firelink-sign: %s\n", e.what());
        return 1;
    }
    return 2;
}
