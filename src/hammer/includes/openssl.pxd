# The OpenSSL C API the core uses (libssl, libcrypto), declared once, nogil.

cdef extern from "<openssl/ssl.h>" nogil:
    ctypedef struct SSL_CTX:
        pass
    ctypedef struct SSL:
        pass
    ctypedef struct SSL_SESSION:
        pass
    ctypedef struct SSL_METHOD:
        pass
    ctypedef struct X509_VERIFY_PARAM:
        pass
    const SSL_METHOD *TLS_client_method()
    SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
    void SSL_CTX_free(SSL_CTX *ctx)
    int SSL_CTX_set_default_verify_paths(SSL_CTX *ctx)
    int SSL_CTX_load_verify_locations(SSL_CTX *ctx, const char *CAfile, const char *CApath)
    void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, void *callback)
    int SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *file)
    int SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *file, int type)
    int SSL_CTX_check_private_key(const SSL_CTX *ctx)
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg)
    unsigned long SSL_CTX_set_options(SSL_CTX *ctx, unsigned long options)
    SSL *SSL_new(SSL_CTX *ctx)
    void SSL_free(SSL *ssl)
    int SSL_set_fd(SSL *ssl, int fd)
    int SSL_set1_host(SSL *ssl, const char *hostname)
    X509_VERIFY_PARAM *SSL_get0_param(SSL *ssl)
    long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg)
    int SSL_set_session(SSL *ssl, SSL_SESSION *session)
    SSL_SESSION *SSL_get1_session(SSL *ssl)
    void SSL_SESSION_free(SSL_SESSION *session)
    int SSL_SESSION_is_resumable(const SSL_SESSION *session)
    int SSL_session_reused(const SSL *ssl)
    int SSL_connect(SSL *ssl)
    int SSL_read(SSL *ssl, void *buf, int num)
    int SSL_write(SSL *ssl, const void *buf, int num)
    int SSL_get_error(const SSL *ssl, int ret)
    int SSL_has_pending(const SSL *ssl)
    void SSL_set_shutdown(SSL *ssl, int mode)
    enum:
        SSL_ERROR_WANT_READ
        SSL_ERROR_WANT_WRITE
        SSL_ERROR_SYSCALL
        SSL_ERROR_ZERO_RETURN
        SSL_VERIFY_NONE
        SSL_VERIFY_PEER
        SSL_FILETYPE_PEM
        SSL_CTRL_SET_TLSEXT_HOSTNAME
        TLSEXT_NAMETYPE_host_name
        SSL_CTRL_SET_SESS_CACHE_MODE
        SSL_SESS_CACHE_CLIENT
        SSL_CTRL_MODE
        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
        SSL_OP_IGNORE_UNEXPECTED_EOF
        SSL_SENT_SHUTDOWN
        SSL_RECEIVED_SHUTDOWN


cdef extern from "<openssl/x509_vfy.h>" nogil:
    int X509_VERIFY_PARAM_set1_ip_asc(X509_VERIFY_PARAM *param, const char *ipasc)


cdef extern from "<openssl/err.h>" nogil:
    unsigned long ERR_get_error()
    void ERR_clear_error()
    void ERR_error_string_n(unsigned long e, char *buf, size_t len)
