/* bindshim.c: a pod address of its own for a program that binds 0.0.0.0 or :: (tests/e2e/podnet.py).
 * Preloaded through /etc/ld.so.preload in the container's root only (the machine's file never changes).
 * A bind() to the wildcard address becomes a bind() to the pod's address, read from /etc/e2e-pod-ip
 * (first line, IPv4; a dual-stack IPv6 wildcard becomes the v4-mapped pod address, an IPv6-only one stays unbound).
 * Every other bind() is left as it is. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef POD_IP_FILE
#define POD_IP_FILE "/etc/e2e-pod-ip"
#endif

static struct in_addr pod;
static int have = -1;
static unsigned short ports[64];
static int nports;

static void load(void) {
  char buf[64] = {0};
  unsigned int port;
  FILE *f;
  if (have != -1) return;
  have = 0;
  f = fopen(POD_IP_FILE, "r");
  if (!f) return;
  if (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\r\n")] = 0;
    if (inet_pton(AF_INET, buf, &pod) == 1) have = 1;
  }
  while (nports < 64 && fscanf(f, "%u", &port) == 1) ports[nports++] = (unsigned short)port;
  fclose(f);
}

static int own_port(unsigned short port) {
  for (int i = 0; i < nports; i++)
    if (ports[i] == port) return 1;
  return 0;
}

/* localhost in a pod is the pod: a connect() to 127.0.0.1 on one of the pod's own container ports (the
 * following lines of /etc/e2e-pod-ip) goes to the pod's address (an exec probe's redis-cli, say). */
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  load();
  if (have == 1 && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in s;
    memcpy(&s, addr, sizeof s);
    if (s.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && own_port(ntohs(s.sin_port))) {
      s.sin_addr = pod;
      return real(fd, (struct sockaddr *)&s, sizeof s);
    }
  }
  return real(fd, addr, len);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  load();
  if (have == 1 && addr) {
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
      struct sockaddr_in s;
      memcpy(&s, addr, sizeof s);
      if (s.sin_addr.s_addr == htonl(INADDR_ANY)) {
        s.sin_addr = pod;
        return real(fd, (struct sockaddr *)&s, sizeof s);
      }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
      struct sockaddr_in6 s;
      memcpy(&s, addr, sizeof s);
      if (IN6_IS_ADDR_UNSPECIFIED(&s.sin6_addr)) {
        int v6only = 0;
        socklen_t olen = sizeof v6only;
        /* An IPv6-only wildcard socket (Redis, mosquitto open one beside their IPv4 one): nothing here uses
         * IPv6, so it is left unbound (listen() gives it an ephemeral port) and the two replicas never meet. */
        if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) == 0 && v6only) return 0;
        memset(&s.sin6_addr, 0, sizeof s.sin6_addr);
        s.sin6_addr.s6_addr[10] = 0xff;
        s.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s.sin6_addr.s6_addr[12], &pod, 4);
        return real(fd, (struct sockaddr *)&s, sizeof s);
      }
    }
  }
  return real(fd, addr, len);
}
