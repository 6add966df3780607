# A container whose own main process is Orthanc, configured jodogne-style from /etc/orthanc (mounted).
FROM {host}
RUN mkdir -p /var/lib/orthanc/db && chown orthanc:orthanc /var/lib/orthanc/db
VOLUME /var/lib/orthanc/db
EXPOSE 8042 4242
ENTRYPOINT ["/usr/sbin/Orthanc"]
CMD ["/etc/orthanc/"]
