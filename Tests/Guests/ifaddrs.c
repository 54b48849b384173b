/* ifaddrs: the interfaces a program sees through getifaddrs and if_nameindex (both ask the
 * kernel over an AF_NETLINK NETLINK_ROUTE socket: RTM_GETLINK and RTM_GETADDR dumps).
 * Prints one line per interface entry, sorted, without the MAC address (it differs per
 * VMM); an IPv6 link-local address derived from the MAC (EUI-64) is printed as
 * "fe80::<eui64>". Then a few netlink protocol checks: a request it does not serve is
 * answered with an NLMSG_ERROR (Apus: EOPNOTSUPP; Linux may say EINVAL or EPERM), the
 * reply coming from port 0 with the caller's port id and sequence number. The test
 * compares the lines with the VM's configuration. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* <linux/netlink.h> and <linux/rtnetlink.h>, which musl's headers lack. */
#define NETLINK_ROUTE 0
#define NLM_F_REQUEST 1
#define NLM_F_ACK 4
#define NLM_F_CREATE 0x400
#define NLMSG_ERROR 2
#define RTM_NEWROUTE 24
struct sockaddr_nl { unsigned short nl_family, nl_pad; unsigned nl_pid, nl_groups; };
struct nlmsghdr { unsigned nlmsg_len; unsigned short nlmsg_type, nlmsg_flags; unsigned nlmsg_seq, nlmsg_pid; };
struct nlmsgerr { int error; struct nlmsghdr msg; };
struct rtmsg { unsigned char rtm_family, rtm_dst_len, rtm_src_len, rtm_tos, rtm_table, rtm_protocol, rtm_scope, rtm_type;
               unsigned rtm_flags; };

static char lines[64][160];
static int count;

static int compare(const void *a, const void *b) { return strcmp(a, b); }

static int prefix_length(const struct sockaddr *mask) {
    if (!mask) return -1;
    const unsigned char *bytes;
    int n;
    if (mask->sa_family == AF_INET) { bytes = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr; n = 4; }
    else { bytes = ((const struct sockaddr_in6 *)mask)->sin6_addr.s6_addr; n = 16; }
    int bits = 0;
    for (int i = 0; i < n; i++) bits += __builtin_popcount(bytes[i]);
    return bits;
}

int main(void) {
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) { printf("getifaddrs: %s\n", strerror(errno)); return 1; }
    unsigned char mac[8][6];
    char macName[8][IF_NAMESIZE];
    int macs = 0;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET && macs < 8) {
            struct sockaddr_ll *ll = (struct sockaddr_ll *)i->ifa_addr;
            memcpy(mac[macs], ll->sll_addr, 6);
            snprintf(macName[macs], IF_NAMESIZE, "%s", i->ifa_name);
            macs++;
        }
    }
    for (struct ifaddrs *i = list; i && count < 64; i = i->ifa_next) {
        char *line = lines[count++];
        int family = i->ifa_addr ? i->ifa_addr->sa_family : -1;
        char flags[96] = "";
        if (i->ifa_flags & IFF_UP) strcat(flags, ",UP");
        if (i->ifa_flags & IFF_BROADCAST) strcat(flags, ",BROADCAST");
        if (i->ifa_flags & IFF_LOOPBACK) strcat(flags, ",LOOPBACK");
        if (i->ifa_flags & IFF_RUNNING) strcat(flags, ",RUNNING");
        if (i->ifa_flags & IFF_MULTICAST) strcat(flags, ",MULTICAST");
        if (family == AF_PACKET) {
            struct sockaddr_ll *ll = (struct sockaddr_ll *)i->ifa_addr;
            snprintf(line, 160, "%s packet hwaddr-length %d flags %s", i->ifa_name, ll->sll_halen, flags + 1);
        } else if (family == AF_INET) {
            char a[64], b[64] = "none";
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof a);
            if ((i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr)
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_broadaddr)->sin_addr, b, sizeof b);
            snprintf(line, 160, "%s inet %s/%d broadcast %s flags %s", i->ifa_name, a, prefix_length(i->ifa_netmask), b, flags + 1);
        } else if (family == AF_INET6) {
            const unsigned char *v6 = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr;
            char a[64];
            inet_ntop(AF_INET6, v6, a, sizeof a);
            for (int m = 0; m < macs; m++) {
                unsigned char eui[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[m][0] ^ 2, mac[m][1], mac[m][2], 0xff, 0xfe,
                                         mac[m][3], mac[m][4], mac[m][5]};
                if (strcmp(macName[m], i->ifa_name) == 0 && memcmp(eui, v6, 16) == 0) strcpy(a, "fe80::<eui64>");
            }
            snprintf(line, 160, "%s inet6 %s/%d flags %s", i->ifa_name, a, prefix_length(i->ifa_netmask), flags + 1);
        } else {
            snprintf(line, 160, "%s family %d", i->ifa_name, family);
        }
    }
    freeifaddrs(list);
    qsort(lines, count, sizeof lines[0], compare);
    for (int i = 0; i < count; i++) printf("%s\n", lines[i]);

    struct if_nameindex *names = if_nameindex();
    if (!names) { printf("if_nameindex: %s\n", strerror(errno)); return 1; }
    for (struct if_nameindex *n = names; n->if_index; n++) printf("if_nameindex: %u %s\n", n->if_index, n->if_name);
    if_freenameindex(names);
    printf("if_nametoindex(lo): %u\n", if_nametoindex("lo"));
    char name[IF_NAMESIZE] = "";
    printf("if_indextoname(1): %s\n", if_indextoname(1, name) ? name : strerror(errno));
    printf("if_nametoindex(nosuch0): %u\n", if_nametoindex("nosuch0"));

    /* The protocol itself: a request this kernel does not serve (RTM_GETROUTE). */
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    socklen_t length = sizeof local;
    int bound = bind(fd, (struct sockaddr *)&local, sizeof local) == 0 && getsockname(fd, (struct sockaddr *)&local, &length) == 0;
    printf("netlink bind and getsockname: %s\n", bound && local.nl_family == AF_NETLINK && local.nl_pid != 0 ? "yes" : "no");
    int type = 0, domain = 0;
    socklen_t size = sizeof type;
    int typed = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_RAW;
    size = sizeof domain;
    printf("netlink SO_TYPE and SO_DOMAIN: %s\n", typed && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0
           && domain == AF_NETLINK ? "yes" : "no");
    struct { struct nlmsghdr header; struct rtmsg body; } request = {
        .header = {.nlmsg_len = sizeof request, .nlmsg_type = RTM_NEWROUTE, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                   .nlmsg_seq = 77},
        .body = {.rtm_family = AF_INET}};
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent = sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel);
    char reply[4096];
    struct sockaddr_nl from;
    socklen_t fromLength = sizeof from;
    ssize_t n = recvfrom(fd, reply, sizeof reply, 0, (struct sockaddr *)&from, &fromLength);
    struct nlmsghdr *h = (struct nlmsghdr *)reply;
    int ok = sent == (ssize_t)sizeof request && n >= (ssize_t)(sizeof(struct nlmsghdr) + sizeof(struct nlmsgerr)) && from.nl_pid == 0
        && h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == 77 && h->nlmsg_pid == local.nl_pid;
    struct nlmsgerr *e = (struct nlmsgerr *)(reply + sizeof(struct nlmsghdr));
    printf("an unserved request (RTM_NEWROUTE) is answered with an error: %s\n", ok ? "yes" : "no");
    printf("... which is not 0 and names the request: %s\n", ok && e->error < 0 && e->msg.nlmsg_seq == 77 ? "yes" : "no");
    close(fd);
    return 0;
}
